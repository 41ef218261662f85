// The warm-up of agenixd's two start paths, run at build time only (scripts/bundle.mjs): whole
// activations with a build-time host and addon, so that every function on an activation's way is
// compiled before the build keeps the result. The V8 startup snapshot (src/snapshot.ts) keeps the
// heap's bytecode; the plain bundle keeps V8 code caches of its scripts (src/code-cache.ts).
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readAccounts } from "./accounts.js";
import { activate, type ActivationResult, type Host } from "./activate.js";
import { parseCommand } from "./cli.js";
import { createLogger } from "./log.js";
import { readManifest, type ManifestFile } from "./manifest.js";
import { setNativeAddon } from "./native.js";
import { createNotifier } from "./notify.js";
import { isRamfs, runCommand } from "./ramfs.js";

/**
 * Set by src/code-cache.ts's produceCodeCaches() before it loads the plain bundle: the path of
 * the warm-up material, which src/main.ts then warms up with instead of running a command. A
 * global symbol, not an environment variable: only code already running in the process can set it.
 */
export const CODE_CACHE_WARM_UP = Symbol.for("agenixd.codeCacheWarmUp");

/**
 * The warm-up material scripts/bundle.mjs generates for each build: throwaway keys made for this
 * build alone and one age file encrypted to them. No real secret is ever near a build.
 */
export interface WarmUpMaterial {
  readonly dir: string;
  /** An OpenSSH ed25519 private key file. */
  readonly sshKey: string;
  /** An age identity file (AGE-SECRET-KEY-1…). */
  readonly ageKey: string;
  /** An age file for the age key, and its plaintext. */
  readonly file: string;
  readonly plaintext: string;
}

/**
 * Runs activations as a start runs them, so that every function on the way is compiled (what did
 * not run is compiled at every start). A Nix build is
 * neither root nor may mount, so the host differs: files belong to the builder, and where the
 * ramfs would be mounted a child process runs (node --version), which compiles the path that
 * systemctl takes. Three runs: a first generation, an unchanged
 * second one (diff against the first, pruning it), and a users phase with nothing to do.
 */
export async function warmUp(material: WarmUpMaterial): Promise<void> {
  const own = { uid: process.getuid!(), gid: process.getgid!() };
  const host: Host = {
    rootUid: own.uid,
    async ensureRamfs(mountPoint) {
      mkdirSync(mountPoint, { recursive: true, mode: 0o751 });
      isRamfs(mountPoint);
      await runCommand(process.execPath, ["--version"]);
    },
    readAccounts() {
      const machine = readAccounts();
      machine.uid("root");
      machine.gid("keys");
      return { uid: () => own.uid, gid: () => own.gid };
    },
  };
  const secretsDir = join(material.dir, "agenix");
  const secret = { file: material.file, mode: "0400", owner: "root", group: "keys" };
  const manifestFile: ManifestFile = {
    version: 1,
    secretsDir,
    secretsMountPoint: join(material.dir, "agenix.d"),
    identityPaths: [material.sshKey, material.ageKey],
    keepGenerations: 1,
    secrets: [
      { ...secret, name: "warm-up", path: join(secretsDir, "warm-up"), symlink: true },
      { ...secret, name: "nested/linked", path: join(material.dir, "etc/linked"), symlink: true },
      { ...secret, name: "copied", path: join(material.dir, "etc/copied"), symlink: false },
    ],
  };
  const manifestPath = join(material.dir, "manifest.json");
  writeFileSync(manifestPath, JSON.stringify(manifestFile));
  parseCommand(["activate", "--manifest", manifestPath, "--phase", "all"]);

  const sink = openSync("/dev/null", "w");
  // No addon can be loaded while a snapshot is built (and the plain bundle's warm-up runs the same
  // code); the build is the only process that takes its lock, a builder's core dumps hold nothing
  // and no systemd listens. A start loads the real one (src/cli.ts).
  const buildTimeAddon = {
    flock: () => true,
    disableCoreDumps() {},
    notify() {},
    mountRamfs() {
      throw new Error("warm-up: nothing is mounted at build time (the warm-up's host does not mount)");
    },
    isatty: () => false,
    exitNow(): never {
      throw new Error("warm-up: the build does not end through the addon");
    },
  };
  setNativeAddon(buildTimeAddon);
  // The warm-up's log lines pass through Node's Buffer pool, which the blob keeps: a fixed clock
  // keeps their "time" the same at every build (docs/performance.md, reproducible builds).
  const now = Date.now;
  Date.now = () => 0;
  try {
    const ctx = { log: createLogger({ pretty: false, fd: sink }), notify: createNotifier({ NOTIFY_SOCKET: "/warm-up" }, buildTimeAddon), host };
    const manifest = readManifest(manifestPath);
    expect(await activate(manifest, "all", ctx), 3, "first generation");
    const installed = readFileSync(join(secretsDir, "warm-up"), "utf8");
    if (installed !== material.plaintext) throw new Error("warm-up: the age file decrypted to the wrong plaintext");
    expect(await activate(manifest, "all", ctx), 3, "second generation");
    expect(await activate(manifest, "users", ctx), 0, "users phase");
  } finally {
    Date.now = now;
    setNativeAddon(undefined);
    closeSync(sink);
  }
}

function expect(result: ActivationResult, installed: number, what: string): void {
  if (result.failed.length > 0 || result.installed.length !== installed) {
    throw new Error(`warm-up, ${what}: ${JSON.stringify(result.failed)} (${result.installed.length} installed)`);
  }
}

/** Reads the material file scripts/bundle.mjs wrote. */
export function readWarmUpMaterial(path: string): WarmUpMaterial {
  return JSON.parse(readFileSync(path, "utf8")) as WarmUpMaterial;
}
