// `npm run bench`: times agenixd against agenix's bash loop for every key type and secret
// count, plus bare Node start and the crypto floor, and writes bench/results/.
// Quick run: `BENCH_N=20 BENCH_RUNS=3 BENCH_KEYS=ed25519 BENCH_OUT=/tmp/bench npm run bench`.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { checkActivation } from "./activation-check.js";
import { writeAgenixScript } from "./agenix-script.js";
import { renderChart } from "./chart.js";
import { prepareCryptoFloor } from "./crypto-floor.js";
import { prepareFixture, type Fixture } from "./fixtures.js";
import { ensurePrivateMountNamespace } from "./namespace.js";
import { agenixdCommandLine, parseBenchOptions, SMALL_COUNT, type BenchOptions } from "./options.js";
import { timeProcess, type ProcessTiming } from "./process-timer.js";
import { renderMarkdown } from "./report.js";
import type { BenchResults, Cell, Sample, Tool } from "./results.js";
import { makeScenario, writeManifest, type Scenario } from "./scenario.js";
import { measureStartCost } from "./start-cost.js";
import { median } from "./stats.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const childEnv = { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", LANG: "C" };

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

function isMounted(path: string): boolean {
  return readFileSync("/proc/self/mounts", "utf8").split("\n").some((l) => l.split(" ")[1] === path);
}

function cleanUp(s: Scenario): void {
  while (isMounted(s.secretsMountPoint)) execFileSync("umount", [s.secretsMountPoint]);
  rmSync(s.root, { recursive: true, force: true });
}

function toSample(t: ProcessTiming): Sample {
  return { wallMs: t.wallMs, readyMs: t.readyMs, maxRssKiB: t.maxRssKiB, cpuMs: t.cpuMs };
}

function runOnce(tool: Tool, fixture: Fixture, runDir: string, opts: BenchOptions): Sample {
  const scenario = makeScenario(runDir, fixture);
  const logPath = join(runDir, `${tool}.log`);
  try {
    let timing: ProcessTiming;
    if (tool === "agenix-loop") {
      const script = writeAgenixScript(scenario, join(runDir, "activate-agenix.sh"));
      timing = timeProcess({ argv: ["bash", script], env: childEnv, log: logPath });
    } else {
      const manifest = writeManifest(scenario, join(runDir, "manifest.json"));
      timing = timeProcess({
        argv: [...opts.agenixdCommand, "activate", "--manifest", manifest],
        env: { ...childEnv, ...opts.agenixdEnv }, log: logPath, notifySocket: join(runDir, "notify.sock"),
      });
    }
    if (timing.exitCode !== 0) {
      throw new Error(`${tool} exited with ${timing.exitCode}; its output:\n${readFileSync(logPath, "utf8").slice(-4000)}`);
    }
    checkActivation(scenario, fixture.secrets, tool);
    return toSample(timing);
  } finally {
    cleanUp(scenario);
  }
}

/** The node version a snapshot blob names in its header (node's SnapshotMetadata: magic, type, version). */
function blobNodeVersion(blob: string): string {
  const head = readFileSync(blob).subarray(0, 64);
  const length = Number(head.readBigUInt64LE(5));
  return head.toString("latin1", 13, 13 + Math.min(length, 40));
}

function machineInfo(): BenchResults["machine"] {
  const cpuModel = cpus()[0]?.model.trim() ?? "unknown CPU";
  const age = execFileSync("age", ["--version"], { encoding: "utf8" }).trim();
  return { cpu: cpuModel, cores: cpus().length, kernel: release(), node: process.version, age, date: new Date().toISOString().slice(0, 10), loadBefore: loadavg()[0] };
}

async function main(): Promise<void> {
  ensurePrivateMountNamespace();
  const opts = parseBenchOptions(process.argv.slice(2), process.env, repoRoot);
  const entry = opts.agenixdCommand.find((a) => /\.(mjs|js|blob)$/.test(a));
  if (entry && !existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first`);
  // Results are per Node major (bench/results/nodeNN/): the blob must be this node's own.
  if (entry?.endsWith(".blob")) {
    const builtBy = blobNodeVersion(entry);
    if (builtBy !== process.versions.node) throw new Error(`${entry} was built by node ${builtBy}, not by this node ${process.versions.node}: run \`npm run build\` with it first`);
  }

  const workDir = join(repoRoot, "bench", "work");
  const maxCount = Math.max(...opts.counts);
  const fixtures: Fixture[] = [];
  for (const keyType of opts.keyTypes) fixtures.push(await prepareFixture(workDir, keyType, maxCount, opts.sizes));

  const scratch = mkdtempSync(join(tmpdir(), "agenixd-bench-"));
  const results: BenchResults = {
    machine: machineInfo(),
    settings: { counts: opts.counts, runs: opts.runs, smallRuns: opts.smallRuns, warmup: opts.warmup, sizes: opts.sizes, agenixdCommand: agenixdCommandLine(opts), skipLoop: opts.skipLoop },
    bareNodeMs: [],
    startImportMs: [],
    esmStartImportMs: [],
    floors: [],
    cells: [],
  };
  try {
    // Bare Node is sampled after every timed run, like the floor, so it sees the same load.
    const sampleBareNode = (): number =>
      timeProcess({ argv: [process.execPath, "-e", "0"], env: childEnv, log: join(scratch, "node.log") }).wallMs;
    for (let r = 0; r < opts.warmup; r++) sampleBareNode();

    let runNumber = 0;
    for (const fixture of fixtures) {
      const floorProbe = prepareCryptoFloor(fixture.keyType, opts.sizes, Math.min(Math.max(100, maxCount), 1000));
      const floorSamples: number[] = [];
      // N = 0 measures each contestant's fixed cost and anchors the per-secret slope.
      for (const count of [0, ...opts.counts.filter((n) => n > 0)]) {
        const subset: Fixture = { ...fixture, secrets: fixture.secrets.slice(0, count) };
        const cells: Record<Tool, Cell> = {
          "agenix-loop": { tool: "agenix-loop", keyType: fixture.keyType, count, samples: [] },
          agenixd: { tool: "agenixd", keyType: fixture.keyType, count, samples: [] },
        };
        const runs = count <= SMALL_COUNT ? opts.smallRuns : opts.runs;
        for (let r = 0; r < opts.warmup + runs; r++) {
          // Alternate which contestant goes first, so drift (thermal, page cache) hits both alike.
          const order = (r % 2 ? ["agenixd", "agenix-loop"] : ["agenix-loop", "agenixd"]).filter((t) => !(opts.skipLoop && t === "agenix-loop")) as Tool[];
          const line: string[] = [];
          for (const tool of order) {
            const sample = runOnce(tool, subset, join(scratch, `run-${runNumber++}`), opts);
            if (r >= opts.warmup) cells[tool].samples.push(sample);
            line.push(`${tool} ${sample.wallMs.toFixed(1)} ms`);
          }
          if (r >= opts.warmup) {
            floorSamples.push(floorProbe.sample());
            const bare = sampleBareNode();
            results.bareNodeMs.push(bare);
            for (const tool of order) cells[tool].samples.at(-1)!.bareNodeMs = bare;
            results.startImportMs!.push(timeProcess({ argv: [...opts.agenixdCommand, "--help"], env: { ...childEnv, ...opts.agenixdEnv }, log: join(scratch, "help.log") }).wallMs);
            results.esmStartImportMs!.push(timeProcess({ argv: [process.execPath, join(repoRoot, "dist", "agenixd.cjs"), "--help"], env: childEnv, log: join(scratch, "help.log") }).wallMs);
          }
          log(`${fixture.keyType} N=${count} ${r < opts.warmup ? "warm-up" : `run ${r - opts.warmup + 1}/${runs}`}: ${line.join(", ")}`);
        }
        if (!opts.skipLoop) results.cells.push(cells["agenix-loop"]);
        results.cells.push(cells.agenixd);
      }
      const floor = { keyType: fixture.keyType, perSecretUs: median(floorSamples), samplesUs: floorSamples };
      results.floors.push(floor);
      log(`${fixture.keyType} crypto floor: ${floor.perSecretUs.toFixed(1)} µs/secret`);
    }
    const startFixture = fixtures.find((f) => f.keyType === "ssh-ed25519") ?? fixtures[0];
    if (opts.startRuns > 0 && startFixture && maxCount > 0) {
      results.startCost = measureStartCost({
        fixture: startFixture, count: Math.min(20, maxCount), rounds: opts.startRuns, node: process.execPath,
        snapshotCommand: opts.agenixdCommand, snapshotEnv: opts.agenixdEnv, bundle: join(repoRoot, "dist", "agenixd.cjs"),
        env: childEnv, scratch, log,
      });
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }

  log(`bare node -e 0: ${median(results.bareNodeMs).toFixed(1)} ms`);
  // Other work on the machine inflates the fork-heavy loop more than agenixd; say how busy it was.
  results.machine.loadAfter = loadavg()[0];
  mkdirSync(opts.outDir, { recursive: true });
  writeFileSync(join(opts.outDir, "results.json"), JSON.stringify(results, null, 1) + "\n");
  const markdown = renderMarkdown(results);
  writeFileSync(join(opts.outDir, "results.md"), markdown);
  writeFileSync(join(opts.outDir, "chart.svg"), renderChart(results));
  process.stdout.write(markdown);
  log(`wrote ${opts.outDir}/results.{md,json} and chart.svg`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
