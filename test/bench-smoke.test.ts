// `npm run bench` takes minutes, so CI runs it in miniature: both contestants, the floor, the
// fixed costs and the report must still come out, and a wrong activation must still fail it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { GLIBC_TUNABLES, snapshotArgs } from "../scripts/launch.js";
import { splitCommandLine } from "../bench/options.js";

const runJs = fileURLToPath(new URL("../bench/run.js", import.meta.url));
const repoRoot = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");

test("the bench runs end to end in miniature and reports every table", (t) => {
  const out = mkdtempSync(join(tmpdir(), "agenixd-bench-smoke-"));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const r = spawnSync(process.execPath, [runJs, "--n", "3", "--runs", "1", "--small-runs", "2", "--warmup", "0", "--keys", "x25519", "--start-runs", "2", "--out", out], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const results = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
  assert.equal(results.settings.smallRuns, 2);
  // By default agenixd starts as the NixOS package starts it, glibc tunables included.
  assert.equal(results.settings.agenixdCommand, `GLIBC_TUNABLES=${GLIBC_TUNABLES} ${process.execPath} ${snapshotArgs(join(repoRoot, "dist", "agenixd.blob")).join(" ")}`);
  // bench/compare.js reads such a line back into its environment and argv.
  assert.deepEqual(splitCommandLine(results.settings.agenixdCommand), {
    env: { GLIBC_TUNABLES },
    argv: [process.execPath, ...snapshotArgs(join(repoRoot, "dist", "agenixd.blob"))],
  });
  const cells = results.cells as Array<{ tool: string; count: number; samples: unknown[] }>;
  for (const tool of ["agenix-loop", "agenixd"]) {
    for (const count of [0, 3]) {
      const cell = cells.find((c) => c.tool === tool && c.count === count);
      assert.equal(cell?.samples.length, 2, `${tool} N=${count}`);
    }
  }
  assert.ok(results.floors[0].perSecretUs > 0);
  // Each run is paired with the bare node start timed right after it.
  for (const c of cells) for (const s of c.samples as Array<{ bareNodeMs?: number }>) assert.ok((s.bareNodeMs ?? 0) > 0, `${c.tool} N=${c.count}`);
  assert.equal(results.esmStartImportMs.length, 4);
  const md = readFileSync(join(out, "results.md"), "utf8");
  for (const heading of ["## Whole activation", "## Fixed cost", "## Per-secret cost", "## Start cost at N=3 x25519", "## Targets"]) assert.ok(md.includes(heading), heading);
  // The start-cost block: every start is a checked activation, paired with the bare start of its round.
  const start = results.startCost as { count: number; rounds: number; variants: Array<{ name: string; wallMs: number[]; aboveBareMs: number[] }> };
  assert.equal(start.count, 3);
  const names = start.variants.map((v) => v.name);
  const plain = ["plain bundle", "plain bundle, no code cache"];
  assert.deepEqual(names, process.arch === "x64" ? ["bare node", "snapshot, build CPU", "snapshot, other CPU", ...plain] : ["bare node", "snapshot, build CPU", ...plain]);
  for (const v of start.variants) {
    assert.equal(v.wallMs.length, 2, v.name);
    assert.ok(v.wallMs.every((x) => x > 0), v.name);
  }
  assert.ok(start.variants.slice(1).every((v) => v.aboveBareMs.every((x, i) => Math.abs(x - (v.wallMs[i]! - start.variants[0]!.wallMs[i]!)) < 1e-9)));
  for (const target of ["snapshot, build CPU, ≤ bare node + 25 ms", "plain bundle (`node dist/agenixd.cjs`) ≤ bare node + 60 ms", "plain bundle, no code cache (another node), ≤ bare node + 60 ms"]) assert.ok(md.includes(target), target);
  assert.match(md, /Medians of 1 runs \(2 for N ≤ 100\)/);
  assert.match(readFileSync(join(out, "chart.svg"), "utf8"), /^<svg/);
});

test("the bench refuses an agenixd that installs nothing", (t) => {
  const out = mkdtempSync(join(tmpdir(), "agenixd-bench-smoke-"));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const r = spawnSync(process.execPath, [runJs, "--n", "2", "--runs", "1", "--small-runs", "1", "--warmup", "0", "--keys", "x25519", "--skip-loop", "--out", out, "--agenixd", "/bin/true"], { encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /agenixd: wrong result: \S+\/agenix does not exist/);
});
