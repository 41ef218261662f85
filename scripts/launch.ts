// How bin/agenixd starts agenixd: node, from the startup snapshot, with the V8 flags of
// package.json's `config.snapshotNodeFlags` and the glibc tunables of `config.glibcTunables` in
// front of any the caller set. bin/agenixd is scripts/agenixd-launcher.sh, which also falls back
// to the plain bundle if node refuses the snapshot; nix/package.nix fills in its @…@ values, and
// renderLauncher below does the same for the boot harness and the tests. The bench and the tests
// also start node from the snapshot directly (snapshotArgs, launchEnv).
//
// The V8 flags are built into the snapshot (scripts/bundle.mjs) and node refuses the blob without
// them. `--no-lazy-feedback-allocation` gives a function its inline caches from its first call
// rather than after a few: nearly everything an activation runs is called only a few times.
// `--no-opt` leaves TurboFan out: a one-shot process of 0.1-1 s finishes before optimised code
// pays off, and its background compiles cost CPU that the rest of the boot wants, and delay the
// exit while they finish (~2 ms less at 20 secrets; at 1000, the same time with 16% less CPU).
// `--no-rehash-snapshot` keeps the string hash seed the snapshot was built with (the same for
// every build: scripts/bundle.mjs fixes V8's random seed; the blob is world-readable, so the seed
// was never a secret). Otherwise V8 draws a new seed at every start, derives its hash secrets
// from it by a prime search (~11 ms of CPU here, a fifth of a bare node's start) and rehashes
// every table in the snapshot. The seed
// guards hash tables against keys chosen to collide (hash flooding); every string agenixd uses as
// a key (of a Map, a Set, a parsed JSON object) comes from root: the manifest in the Nix store,
// the host keys, /etc/passwd and /etc/group. Whoever can choose those already chooses the secrets.
// Math.random is still seeded per start; node:crypto does not use V8's seed.
//
// The tunables make glibc's malloc back its large blocks with transparent huge pages
// (`hugetlb=1`) and serve blocks up to 32 MiB from the heap rather than from a fresh mmap each
// (`mmap_threshold`). node reads the 5.6 MB blob into one such block and copies code caches out
// of it; with 4 KiB pages that is ~3,000 page faults, each one a few microseconds in a VM.
// glibc ignores a tunable it does not know, silently: test/launch.test.ts counts the faults.
import { readFileSync } from "node:fs";

const packageJson = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  config: { snapshotNodeFlags: string; glibcTunables: string };
};

export const GLIBC_TUNABLES: string = packageJson.config.glibcTunables;
/** The V8 flags the snapshot is built and started with. */
export const SNAPSHOT_NODE_FLAGS: readonly string[] = packageJson.config.snapshotNodeFlags.split(" ").filter(Boolean);

/** node's arguments to start agenixd from the snapshot blob, before agenixd's own. */
export function snapshotArgs(blob: string): string[] {
  return [...SNAPSHOT_NODE_FLAGS, "--snapshot-blob", blob, "--"];
}

/** The environment bin/agenixd gives node: `env` with the package's tunables put first. */
export function launchEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  out.GLIBC_TUNABLES = env.GLIBC_TUNABLES ? `${GLIBC_TUNABLES}:${env.GLIBC_TUNABLES}` : GLIBC_TUNABLES;
  return out;
}

export interface LauncherValues {
  /** A POSIX shell for the #! line. */
  readonly shell: string;
  readonly node: string;
  /** The dist/ directory: agenixd.blob, agenixd.cjs, agenixd.node. */
  readonly dist: string;
  /** The snapshot's V8 flags; package.json's by default (tests pass others). */
  readonly snapshotNodeFlags?: readonly string[];
}

/**
 * bin/agenixd: scripts/agenixd-launcher.sh with its @…@ values filled in, as nix/package.nix fills
 * them in with `substitute`. Values go inside single quotes, so none may hold one.
 */
export function renderLauncher(values: LauncherValues): string {
  const template = readFileSync(new URL("../../scripts/agenixd-launcher.sh", import.meta.url), "utf8");
  const flags = values.snapshotNodeFlags ?? SNAPSHOT_NODE_FLAGS;
  for (const flag of flags) if (!/^--[a-z0-9-]+(=[A-Za-z0-9._-]+)?$/.test(flag)) throw new Error(`renderLauncher: unexpected V8 flag ${flag}`);
  const substitutions: Record<string, string> = {
    shell: values.shell,
    node: values.node,
    dist: values.dist,
    glibcTunables: GLIBC_TUNABLES,
    snapshotNodeFlags: flags.join(" "),
  };
  for (const [name, value] of Object.entries(substitutions)) {
    if (/['\n]/.test(value)) throw new Error(`renderLauncher: ${name} may not hold a quote or a newline: ${value}`);
  }
  const script = template.replace(/@([A-Za-z]+)@/g, (whole, name: string) => substitutions[name] ?? whole);
  const left = /@[A-Za-z]+@/.exec(script);
  if (left) throw new Error(`renderLauncher: scripts/agenixd-launcher.sh has ${left[0]}, which has no value`);
  return script;
}
