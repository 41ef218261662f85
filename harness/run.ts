// Runs the vm-tests scenarios under a real systemd:
//   node build/harness/run.js [--backend nspawn|qemu|all] [--list] [scenario...]
// nspawn runs every scenario; qemu those marked "qemu": true. Prints each scenario's time; a
// failing scenario prints the machine's journal for agenixd. Exits 1 if any scenario failed.
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cacheDir, repoRoot } from "./cache.js";
import { debianRoot } from "./debian-root.js";
import { agenixdRoot, buildFixture } from "./fixture.js";
import { Machine } from "./machine.js";
import { NspawnBackend } from "./nspawn.js";
import { loadScenario, scenarioNames, type Scenario } from "./scenario.js";
import { runSteps } from "./steps.js";

type BackendName = "nspawn" | "qemu";

async function machineFor(backend: BackendName, scenario: Scenario, runDir: string): Promise<Machine> {
  if (scenario.tpm && backend !== "qemu") throw new Error(`${scenario.name}: a TPM (tpm) needs the QEMU backend; mark the scenario qemuOnly`);
  const fixture = join(runDir, "fixture");
  const root = await debianRoot(backend);
  const { disks } = await buildFixture(scenario, fixture, root);
  const log = (line: string) => console.log(`  ${line}`);
  if (backend === "nspawn") {
    return new Machine(scenario.name, new NspawnBackend({
      name: scenario.name,
      layers: [fixture, root],
      binds: [
        { host: process.execPath, container: "/usr/local/bin/node" },
        { host: join(repoRoot, "dist"), container: `${agenixdRoot}/dist` },
        { host: join(repoRoot, "node_modules"), container: `${agenixdRoot}/node_modules` },
      ],
      stateDir: join(runDir, "machine"),
    }), log);
  }
  const { QemuBackend } = await import("./qemu.js");
  return new Machine(scenario.name, await QemuBackend.create({ name: scenario.name, fixture, stateDir: join(runDir, "machine"), disks, tpm: scenario.tpm ?? false }), log);
}

/** Machines to stop if the run is interrupted, so that no QEMU or container outlives it. */
const running = new Set<Machine>();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.log(`harness: ${signal}, stopping ${running.size} machine(s)`);
    void Promise.allSettled([...running].map((m) => m.dispose())).then(() => process.exit(130));
  });
}

/** Builds (or finds in the cache) what the backend boots, so scenario times are scenario times. */
async function prepare(backend: BackendName): Promise<void> {
  const started = Date.now();
  if (backend === "nspawn") await debianRoot("nspawn");
  else await (await import("./qemu.js")).prepareQemu();
  console.log(`harness: ${backend} images ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

async function runScenario(backend: BackendName, scenario: Scenario): Promise<boolean> {
  const runDir = join(cacheDir(), "runs", `${scenario.name}-${backend}-${process.pid}`);
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const started = Date.now();
  console.log(`=== ${scenario.name} (${backend}): ${scenario.description}`);
  let machine: Machine | undefined;
  let ok = false;
  try {
    machine = await machineFor(backend, scenario, runDir);
    running.add(machine);
    await runSteps(machine, scenario.steps);
    ok = true;
  } catch (error) {
    console.log(`  FAILED: ${(error as Error).stack ?? String(error)}`);
    if (machine) {
      console.log("  --- journal of agenixd (all boots) ---");
      const journal = await machine.journal(["-u", "agenixd.service", "-u", "agenixd-users.service", "-u", "systemd-sysusers.service", "-u", "user@*.service", "--user-unit", "agenixd.service"]).catch((e: Error) => e.message);
      console.log(journal.replace(/^/gm, "  | "));
    }
  } finally {
    await machine?.dispose().catch((e: Error) => console.log(`  cleanup failed: ${e.message}`));
    if (machine) running.delete(machine);
    rmSync(runDir, { recursive: true, force: true });
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`=== ${scenario.name} (${backend}): ${ok ? "ok" : "FAILED"} in ${seconds} s`);
  return ok;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { backend: { type: "string", default: "nspawn" }, list: { type: "boolean" } },
  });
  const all = scenarioNames();
  if (values.list) {
    for (const name of all) {
      const s = loadScenario(name);
      console.log(`${name}${s.qemuOnly ? " (qemu)" : s.qemu ? " (nspawn, qemu)" : " (nspawn)"}: ${s.description}`);
    }
    return 0;
  }
  const backends: BackendName[] = values.backend === "all" ? ["nspawn", "qemu"] : [values.backend as BackendName];
  if (!backends.every((b) => b === "nspawn" || b === "qemu")) {
    console.error(`unknown backend ${values.backend}: nspawn, qemu or all`);
    return 2;
  }
  const unknown = positionals.filter((n) => !all.includes(n));
  if (unknown.length) {
    console.error(`unknown scenario(s): ${unknown.join(", ")}; known: ${all.join(", ")}`);
    return 2;
  }
  if (!existsSync(join(repoRoot, "dist", "agenixd.cjs"))) {
    console.error("harness: dist/agenixd.cjs is missing; run `npm run build` first");
    return 2;
  }
  const names = positionals.length ? positionals : all;
  const failed: string[] = [];
  let ran = 0;
  const started = Date.now();
  for (const backend of backends) {
    // Asked for by name, a scenario runs on the backend given; otherwise QEMU runs only the
    // scenarios marked for it (each takes minutes under TCG).
    // A qemuOnly scenario needs the QEMU machine's own kernel, whatever was asked for.
    const scenarios = names
      .map(loadScenario)
      .filter((s) => (backend === "qemu" ? s.qemu || positionals.length > 0 : !s.qemuOnly));
    if (scenarios.length === 0) continue;
    try {
      await prepare(backend);
    } catch (error) {
      console.log(`harness: preparing the ${backend} backend failed: ${(error as Error).stack ?? String(error)}`);
      failed.push(...scenarios.map((s) => `${s.name} (${backend})`));
      ran += scenarios.length;
      continue;
    }
    for (const scenario of scenarios) {
      ran++;
      if (!(await runScenario(backend, scenario))) failed.push(`${scenario.name} (${backend})`);
    }
  }
  const total = ((Date.now() - started) / 1000).toFixed(1);
  if (failed.length) console.log(`harness: failed after ${total} s: ${failed.join(", ")}`);
  else console.log(`harness: all scenarios passed in ${total} s`);
  // The plain closing line CI reads.
  console.log(`harness: ${ran - failed.length} passed, ${failed.length} failed`);
  return failed.length ? 1 : 0;
}

process.exitCode = await main();
