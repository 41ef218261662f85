// The start-cost block of `npm run bench` (issue #18): at N = 20 ssh-ed25519 secrets, in
// interleaved rounds (a bare `node -e 0` first, then the others in an order that alternates),
// the snapshot as the package starts it, the same snapshot as it starts on another CPU, and the
// plain bundle, each as the median of its time minus the bare start of the same round. The plain
// bundle twice: with the code caches the build made (the same node, as the package's launcher
// falls back to it) and from a copy of dist/ without them, which is what another node sees (V8
// refuses a cache made by another V8).
//
// "Another CPU": what a start could do differently on a CPU other than the build machine's is
// (a) refuse the blob, which the bench checks under qemu-user (`qemu-x86_64 -cpu Nehalem`, too
// slow to time) and test/cpu-portability.test.ts for more models; (b) run compiled code from the
// blob that was made for the build CPU: there is none, the blob holds bytecode only
// (scripts/bundle.mjs cuts node's code cache out); (c) generate different machine code at run time
// (Sparkplug, regular expressions, builtins' CPU-dependent paths), as V8 does when it detects fewer
// CPU features. (c) is what is timed: the same blob, with V8's optional x86-64 features switched
// off (`--no-enable-sse3 … --no-enable-popcnt`), which is how V8 runs on a baseline x86-64 CPU.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { checkActivation } from "./activation-check.js";
import type { Fixture } from "./fixtures.js";
import { timeProcess } from "./process-timer.js";
import { makeScenario, writeManifest } from "./scenario.js";
import { median } from "./stats.js";

export type StartVariant = "bare node" | "snapshot, build CPU" | "snapshot, other CPU" | "plain bundle" | "plain bundle, no code cache";

export interface StartCost {
  keyType: string;
  count: number;
  rounds: number;
  /** The V8 flags the "other CPU" start adds (empty: not measured, e.g. on arm64). */
  otherCpuFlags: string[];
  /** Whether node started the blob and agenixd ran, per qemu-user CPU model (undefined: no qemu-x86_64). */
  qemuAccepted?: Record<string, boolean>;
  variants: Array<{ name: StartVariant; command: string; wallMs: number[]; aboveBareMs: number[] }>;
}

/** V8's optional x86-64 CPU features that this node knows (the set grows with releases). */
export function x64FeatureFlags(node: string): string[] {
  if (process.arch !== "x64") return [];
  const known = ["sse3", "ssse3", "sse4-1", "sse4-2", "sahf", "avx", "avx2", "avx-vnni", "avx-vnni-int8", "fma3", "f16c", "bmi1", "bmi2", "lzcnt", "popcnt"];
  const options = execFileSync(node, ["--v8-options"], { encoding: "utf8", maxBuffer: 16 << 20 });
  return known.filter((f) => new RegExp(`^\\s*--enable-${f}\\b`, "m").test(options)).map((f) => `--no-enable-${f}`);
}

/** Starts the snapshot under `qemu-x86_64 -cpu MODEL` and says whether agenixd itself answered. */
function acceptedUnderQemu(model: string, snapshotCommand: string[], env: Record<string, string>): boolean {
  const r = spawnSync("qemu-x86_64", ["-cpu", model, ...snapshotCommand, "--version"], { env, encoding: "utf8", timeout: 300_000 });
  return r.status === 0 && /^agenixd \d/.test(r.stdout);
}

export function measureStartCost(opts: {
  fixture: Fixture;
  count: number;
  rounds: number;
  node: string;
  /** The snapshot as the package starts it: node, flags, --snapshot-blob BLOB, --. */
  snapshotCommand: string[];
  snapshotEnv: Record<string, string>;
  bundle: string;
  env: Record<string, string>;
  scratch: string;
  log: (line: string) => void;
}): StartCost {
  const { fixture, count, node, snapshotCommand } = opts;
  const subset: Fixture = { ...fixture, secrets: fixture.secrets.slice(0, count) };
  const otherCpuFlags = x64FeatureFlags(node);
  const blobAt = snapshotCommand.indexOf("--snapshot-blob");
  const commands: Array<{ name: StartVariant; argv: string[]; env: Record<string, string> }> = [
    { name: "bare node", argv: [node, "-e", "0"], env: opts.env },
    { name: "snapshot, build CPU", argv: snapshotCommand, env: { ...opts.env, ...opts.snapshotEnv } },
    ...(otherCpuFlags.length > 0 && blobAt > 0
      ? [{ name: "snapshot, other CPU" as const, argv: [...snapshotCommand.slice(0, blobAt), ...otherCpuFlags, ...snapshotCommand.slice(blobAt)], env: { ...opts.env, ...opts.snapshotEnv } }]
      : []),
    { name: "plain bundle", argv: [node, opts.bundle], env: opts.env },
    { name: "plain bundle, no code cache", argv: [node, withoutCodeCaches(opts.bundle, join(opts.scratch, "dist-without-code-caches"))], env: opts.env },
  ];
  const result: StartCost = {
    keyType: fixture.keyType, count, rounds: opts.rounds, otherCpuFlags,
    variants: commands.map((c) => ({ name: c.name, command: [...Object.entries(c.env).filter(([k]) => k !== "PATH" && k !== "LANG").map(([k, v]) => `${k}=${v}`), ...c.argv].join(" "), wallMs: [], aboveBareMs: [] })),
  };
  for (let round = 0; round <= opts.rounds; round++) {
    const others = commands.map((_, i) => i).slice(1);
    const order = [0, ...(round % 2 ? others : others.reverse())];
    const wall: number[] = [];
    for (const v of order) {
      const c = commands[v]!;
      const root = join(opts.scratch, `start-${round}-${v}`);
      const scenario = makeScenario(root, subset);
      const isBare = v === 0;
      const t = timeProcess({
        argv: isBare ? c.argv : [...c.argv, "activate", "--manifest", writeManifest(scenario, join(root, "manifest.json"))],
        env: c.env, log: join(root, "log"), notifySocket: isBare ? undefined : join(root, "notify.sock"),
      });
      if (t.exitCode !== 0) throw new Error(`${c.name} exited with ${t.exitCode}:\n${readFileSync(join(root, "log"), "utf8").slice(-4000)}`);
      if (!isBare) {
        checkActivation(scenario, subset.secrets, c.name);
        execFileSync("umount", [scenario.secretsMountPoint]);
      }
      rmSync(root, { recursive: true, force: true });
      wall[v] = t.wallMs;
    }
    // Round 0 warms the page cache and is not kept.
    if (round === 0) continue;
    commands.forEach((_, v) => {
      result.variants[v]!.wallMs.push(wall[v]!);
      result.variants[v]!.aboveBareMs.push(wall[v]! - wall[0]!);
    });
    if (round % 5 === 0 || round === opts.rounds) {
      opts.log(`start cost, round ${round}/${opts.rounds}: ${result.variants.slice(1).map((x) => `${x.name} +${median(x.aboveBareMs).toFixed(1)} ms`).join(", ")}`);
    }
  }
  if (process.arch === "x64" && existsQemu()) {
    result.qemuAccepted = {};
    for (const model of ["Nehalem"]) {
      result.qemuAccepted[model] = acceptedUnderQemu(model, snapshotCommand, { ...opts.env, ...opts.snapshotEnv });
      opts.log(`qemu-x86_64 -cpu ${model}: the snapshot ${result.qemuAccepted[model] ? "started" : "was NOT started"}`);
    }
  }
  return result;
}

/** A copy of the bundle's directory without its *.code-cache files; the copy's bundle. */
function withoutCodeCaches(bundle: string, copy: string): string {
  cpSync(dirname(bundle), copy, { recursive: true });
  for (const f of readdirSync(copy)) if (f.endsWith(".code-cache")) rmSync(join(copy, f));
  return join(copy, basename(bundle));
}

function existsQemu(): boolean {
  return (process.env.PATH ?? "").split(":").some((d) => d.startsWith("/") && existsSync(join(d, "qemu-x86_64")));
}
