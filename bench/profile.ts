// `node build/bench/profile.js [--keys ed25519] [--n 1000] [--entry build/src/main.js]`:
// runs one agenixd activation under `node --cpu-prof` and prints where the CPU time went, by
// function and by source file. Profiling the unbundled build (the default) names the modules;
// `--entry dist/agenixd.cjs` profiles the plain bundle, `--entry dist/agenixd.blob` the snapshot.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { checkActivation } from "./activation-check.js";
import { prepareFixture } from "./fixtures.js";
import { ensurePrivateMountNamespace } from "./namespace.js";
import { parseBenchOptions } from "./options.js";
import { timeProcess } from "./process-timer.js";
import { snapshotArgs } from "../scripts/launch.js";
import { makeScenario, writeManifest } from "./scenario.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

function summarise(profile: CpuProfile, top: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    const file = f.url.startsWith("file://") ? relative(repoRoot, fileURLToPath(f.url)) : f.url || "(native/VM)";
    const fn = `${f.functionName || "(anonymous)"}  ${file}${f.url ? `:${f.lineNumber + 1}` : ""}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    const group = file.startsWith("node_modules/") ? file.split("/").slice(0, file.startsWith("node_modules/@") ? 3 : 2).join("/") : file;
    byFile.set(group, (byFile.get(group) ?? 0) + us);
  }
  const total = (profile.endTime - profile.startTime) / 1e3;
  const table = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([k, us]) => `${(us / 1e3).toFixed(1).padStart(8)} ms  ${k}`).join("\n");
  return `profiled ${total.toFixed(1)} ms (from V8 profiler start, after Node's own bootstrap)\n\nself time by function:\n${table(byFunction)}\n\nself time by file or package:\n${table(byFile)}\n`;
}

/** A script, or a snapshot blob started with the package's V8 flags. */
function entryArgv(entry: string): string[] {
  return entry.endsWith(".blob") ? snapshotArgs(entry) : [entry];
}

async function main(): Promise<void> {
  ensurePrivateMountNamespace();
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { keys: { type: "string", default: "ed25519" }, n: { type: "string", default: "1000" }, entry: { type: "string", default: "build/src/main.js" }, top: { type: "string", default: "25" } },
  });
  const opts = parseBenchOptions(["--keys", values.keys!, "--n", values.n!], {}, repoRoot);
  const fixture = await prepareFixture(join(repoRoot, "bench", "work"), opts.keyTypes[0]!, opts.counts[0]!, opts.sizes);
  const scratch = mkdtempSync(join(tmpdir(), "agenixd-profile-"));
  try {
    const scenario = makeScenario(join(scratch, "run"), fixture);
    const manifest = writeManifest(scenario, join(scratch, "manifest.json"));
    const profDir = join(scratch, "prof");
    const t = timeProcess({
      argv: [process.execPath, "--cpu-prof", `--cpu-prof-dir=${profDir}`, "--cpu-prof-interval=100", ...entryArgv(resolve(repoRoot, values.entry!)), "activate", "--manifest", manifest],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, log: join(scratch, "agenixd.log"), notifySocket: join(scratch, "notify.sock"),
    });
    if (t.exitCode !== 0) throw new Error(`agenixd exited with ${t.exitCode}:\n${readFileSync(join(scratch, "agenixd.log"), "utf8")}`);
    checkActivation(scenario, fixture.secrets, "agenixd");
    execFileSync("umount", [scenario.secretsMountPoint]);
    const file = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"))!;
    const profile = JSON.parse(readFileSync(join(profDir, file), "utf8")) as CpuProfile;
    process.stdout.write(`${fixture.keyType}, N=${fixture.secrets.length}, ${values.entry}: wall ${t.wallMs.toFixed(1)} ms (with profiler), READY=1 at ${t.readyMs?.toFixed(1)} ms, peak RSS ${(t.maxRssKiB / 1024).toFixed(1)} MiB\n`);
    process.stdout.write(summarise(profile, Number(values.top)));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`profile: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
