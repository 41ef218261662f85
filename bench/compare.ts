// `node build/bench/compare.js --n 20 --runs 20 --keys ed25519 "node dist/agenixd.cjs" "node other/agenixd.cjs"`:
// A/B test of agenixd builds. Runs the given commands interleaved (so machine load hits all
// alike) on the same fixture and prints median and minimum wall and CPU time for each, and the
// median of its wall time minus that of the `node -e 0` timed in the same round.
// Made for judging start-up changes worth 5-40 ms on a shared, noisy machine. As in a shell,
// leading NAME=value words of a command are its environment. Without commands it times agenixd
// as the NixOS package starts it (scripts/launch.ts).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { checkActivation } from "./activation-check.js";
import { prepareFixture } from "./fixtures.js";
import { ensurePrivateMountNamespace } from "./namespace.js";
import { agenixdCommandLine, parseBenchOptions, splitCommandLine } from "./options.js";
import { timeProcess, type ProcessTiming } from "./process-timer.js";
import { makeScenario, writeManifest } from "./scenario.js";
import { median } from "./stats.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

async function main(): Promise<void> {
  ensurePrivateMountNamespace();
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2), allowPositionals: true,
    options: { keys: { type: "string", default: "ed25519" }, n: { type: "string", default: "20" }, runs: { type: "string", default: "20" } },
  });
  const opts = parseBenchOptions(["--keys", values.keys!, "--n", values.n!, "--runs", values.runs!], {}, repoRoot);
  const commands = positionals.length > 0 ? positionals : [agenixdCommandLine(opts)];
  const fixture = await prepareFixture(join(repoRoot, "bench", "work"), opts.keyTypes[0]!, opts.counts[0]!, opts.sizes);
  const variants = [["node -e 0", `${process.execPath} -e 0`], ...commands.map((c) => [c, c])] as [string, string][];
  const timings: ProcessTiming[][] = variants.map(() => []);
  const scratch = mkdtempSync(join(tmpdir(), "agenixd-compare-"));
  try {
    for (let r = 0; r < opts.runs + 1; r++) {
      // node -e 0 first in every round; the builds after it, in alternating order, so that neither
      // always runs right after the bare start.
      const builds = commands.map((_, i) => i + 1);
      const order = [0, ...(r % 2 ? builds : builds.reverse())];
      for (const v of order) {
        const command = variants[v]![1];
        const root = join(scratch, `run-${r}-${v}`);
        const scenario = makeScenario(root, fixture);
        const isNode = v === 0;
        const { env, argv } = splitCommandLine(command);
        const t = timeProcess({
          argv: isNode ? argv : [...argv, "activate", "--manifest", writeManifest(scenario, join(root, "manifest.json"))],
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, log: join(root, "log"), notifySocket: isNode ? undefined : join(root, "notify.sock"),
        });
        if (t.exitCode !== 0) throw new Error(`${command} exited with ${t.exitCode}:\n${readFileSync(join(root, "log"), "utf8")}`);
        if (!isNode) {
          checkActivation(scenario, fixture.secrets, command);
          execFileSync("umount", [scenario.secretsMountPoint]);
        }
        rmSync(root, { recursive: true, force: true });
        if (r > 0) timings[v]!.push(t);
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  process.stdout.write(`${fixture.keyType}, N=${fixture.secrets.length}, ${opts.runs} interleaved runs (ms)\n`);
  process.stdout.write("wall median   wall min   cpu median    cpu min   − bare node   rss MiB   command\n");
  const bare = timings[0]!;
  variants.forEach(([name], v) => {
    const t = timings[v]!;
    const col = (xs: number[], f: (x: number[]) => number) => f(xs).toFixed(1).padStart(10);
    // As in the bench: the median of each run's wall time minus the bare start of the same round.
    const paired = v === 0 ? "" : median(t.map((x, i) => x.wallMs - bare[i]!.wallMs)).toFixed(1);
    process.stdout.write(`${col(t.map((x) => x.wallMs), median)} ${col(t.map((x) => x.wallMs), (x) => Math.min(...x))} ${col(t.map((x) => x.cpuMs), median)} ${col(t.map((x) => x.cpuMs), (x) => Math.min(...x))} ${paired.padStart(13)} ${(Math.max(...t.map((x) => x.maxRssKiB)) / 1024).toFixed(1).padStart(9)}   ${name}\n`);
  });
}

main().catch((e: unknown) => {
  process.stderr.write(`compare: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
