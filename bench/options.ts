// Bench configuration, from flags (`--n 20,100 --runs 3 --keys ed25519`) or the matching
// BENCH_* environment variables, so a quick run needs no edit.
import { parseArgs } from "node:util";
import { GLIBC_TUNABLES, snapshotArgs } from "../scripts/launch.js";

/** Counts up to this many secrets are measured `smallRuns` times. */
export const SMALL_COUNT = 100;

export type KeyType = "ssh-ed25519" | "ssh-rsa" | "x25519";
export const ALL_KEY_TYPES: readonly KeyType[] = ["ssh-ed25519", "ssh-rsa", "x25519"];

export interface BenchOptions {
  /** Secret counts to measure, ascending. */
  counts: number[];
  /** Measured repetitions per (tool, key type, count); medians are reported. */
  runs: number;
  /** Measured repetitions for counts up to SMALL_COUNT, whose runs take a second or two. */
  smallRuns: number;
  /** Unmeasured repetitions before the measured ones (page cache, first-exec effects). */
  warmup: number;
  keyTypes: KeyType[];
  /** Plaintext sizes in bytes, cycled over the secrets. */
  sizes: number[];
  /** Directory the table, chart and raw JSON are written to. */
  outDir: string;
  /** Command that runs agenixd; the bench appends `activate --manifest FILE`. */
  agenixdCommand: string[];
  /** Variables agenixd's command gets on top of the bench's own environment: the NixOS package's
   * glibc tunables for the default command, none for one given with --agenixd/BENCH_AGENIXD. */
  agenixdEnv: Record<string, string>;
  /** Skip the bash loop (experiments on agenixd alone); the table then has no ratios. */
  skipLoop: boolean;
  /** Interleaved rounds of the start-cost block (bench/start-cost.ts); 0 leaves it out. */
  startRuns: number;
}

const KEY_ALIASES: Record<string, KeyType> = {
  ed25519: "ssh-ed25519", "ssh-ed25519": "ssh-ed25519",
  rsa: "ssh-rsa", "ssh-rsa": "ssh-rsa",
  x25519: "x25519", age: "x25519",
};

function parseIntList(text: string, what: string): number[] {
  const values = text.split(",").map((s) => Number(s.trim()));
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < 0)) {
    throw new Error(`${what}: expected a comma-separated list of non-negative integers, got "${text}"`);
  }
  return values;
}

export function parseBenchOptions(argv: string[], env: NodeJS.ProcessEnv, repoRoot: string): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: "string" },
      runs: { type: "string" },
      "small-runs": { type: "string" },
      warmup: { type: "string" },
      keys: { type: "string" },
      sizes: { type: "string" },
      out: { type: "string" },
      agenixd: { type: "string" },
      "skip-loop": { type: "boolean" },
      "start-runs": { type: "string" },
    },
    strict: true,
  });
  const counts = parseIntList(values.n ?? env.BENCH_N ?? "20,100,1000", "--n/BENCH_N").sort((a, b) => a - b);
  const [runs] = parseIntList(values.runs ?? env.BENCH_RUNS ?? "5", "--runs/BENCH_RUNS");
  const [warmup] = parseIntList(values.warmup ?? env.BENCH_WARMUP ?? "1", "--warmup/BENCH_WARMUP");
  const keyTypes = (values.keys ?? env.BENCH_KEYS ?? "ed25519,rsa,x25519").split(",").map((k) => {
    const type = KEY_ALIASES[k.trim()];
    if (!type) throw new Error(`--keys/BENCH_KEYS: unknown key type "${k}" (ed25519, rsa, x25519)`);
    return type;
  });
  const sizes = parseIntList(values.sizes ?? env.BENCH_SIZES ?? "64,512,4096", "--sizes/BENCH_SIZES");
  // One directory per Node major: dist/ is built by one node, and its results are that node's.
  const outDir = values.out ?? env.BENCH_OUT ?? `${repoRoot}/bench/results/node${process.versions.node.split(".")[0]}`;
  // Whitespace-separated; lets an experiment (other node flags, another bundle) be benchmarked as is.
  // The default is how the NixOS package starts agenixd: node from the startup snapshot, with the
  // package's glibc tunables (scripts/launch.ts).
  const given = values.agenixd ?? env.BENCH_AGENIXD;
  const agenixdCommand = given === undefined ? [process.execPath, ...snapshotArgs(`${repoRoot}/dist/agenixd.blob`)] : given.split(/\s+/).filter((s) => s.length > 0);
  const agenixdEnv: Record<string, string> = given === undefined ? { GLIBC_TUNABLES } : {};
  if (runs === undefined || runs < 1) throw new Error("--runs must be at least 1");
  // A start-up figure of 100 ms moves by tens of ms with the load of a shared machine; more
  // samples steady its median where they are cheap.
  const [smallRuns] = parseIntList(values["small-runs"] ?? env.BENCH_SMALL_RUNS ?? String(3 * runs), "--small-runs/BENCH_SMALL_RUNS");
  if (smallRuns === undefined || smallRuns < 1) throw new Error("--small-runs must be at least 1");
  if (sizes.some((s) => s === 0)) throw new Error("--sizes: secrets must not be empty");
  const skipLoop = values["skip-loop"] ?? env.BENCH_SKIP_LOOP === "1";
  const [startRuns] = parseIntList(values["start-runs"] ?? env.BENCH_START_RUNS ?? "30", "--start-runs/BENCH_START_RUNS");
  return { counts, runs, smallRuns, warmup: warmup ?? 1, keyTypes: [...new Set(keyTypes)], sizes, outDir, agenixdCommand, agenixdEnv, skipLoop, startRuns: startRuns ?? 30 };
}

/** agenixd's command as a shell reads it: its extra environment as NAME=value words, then argv. */
export function agenixdCommandLine(opts: Pick<BenchOptions, "agenixdCommand" | "agenixdEnv">): string {
  return [...Object.entries(opts.agenixdEnv).map(([k, v]) => `${k}=${v}`), ...opts.agenixdCommand].join(" ");
}

/** The reverse of agenixdCommandLine, for any command line: leading NAME=value words, then argv. */
export function splitCommandLine(line: string): { env: Record<string, string>; argv: string[] } {
  const words = line.split(/\s+/).filter(Boolean);
  const assignments = words.findIndex((w) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(w));
  const env = Object.fromEntries(words.slice(0, assignments).map((w) => [w.slice(0, w.indexOf("=")), w.slice(w.indexOf("=") + 1)]));
  return { env, argv: words.slice(assignments) };
}
