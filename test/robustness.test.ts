// Crashes and races: SIGKILL at random points, concurrent activations.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { once } from "node:events";
import { Sandbox } from "./helpers/sandbox.js";

const COUNT = 40;

function manifestFor(sb: Sandbox, version: number, files: Map<number, string[]>): string {
  if (!files.has(version % 3)) {
    files.set(version % 3, Array.from({ length: COUNT }, (_, i) => sb.encrypt(`v${version % 3}-${i}`)));
  }
  const encrypted = files.get(version % 3)!;
  return sb.manifest(Array.from({ length: COUNT }, (_, i) => ({ name: `dir${i % 4}/s${i}`, file: encrypted[i] })));
}

/** secretsDir must point at a generation with every secret, all from one manifest. */
function assertComplete(sb: Sandbox): void {
  if (!existsSync(sb.secretsDir)) return; // killed before the first swap
  const target = readlinkSync(sb.secretsDir);
  assert.match(target, /\/\d+$/);
  const versions = new Set<string>();
  for (let i = 0; i < COUNT; i++) {
    const value = readFileSync(`${target}/dir${i % 4}/s${i}`, "utf8");
    assert.match(value, new RegExp(`^v\\d-${i}$`));
    versions.add(value.split("-")[0]!);
  }
  assert.equal(versions.size, 1, `generation ${target} mixes manifests`);
}

test("SIGKILL at random points never leaves secretsDir pointing at an incomplete generation", async (t) => {
  const sb = new Sandbox("kill");
  t.after(() => sb.cleanup());
  const files = new Map<number, string[]>();
  // Calibrate: kill points spread over the whole length of an activation, and a little past it.
  const started = Date.now();
  assert.equal(sb.run(manifestFor(sb, 100, files)).status, 0);
  const duration = Date.now() - started;
  let killedMidway = 0;
  // 25 rounds, more while none was killed mid-way (a loaded machine makes the calibration slower
  // than the runs after it); every other round kills in the first half.
  let round = 0;
  for (; round < 25 || (killedMidway === 0 && round < 60); round++) {
    const child = sb.start(manifestFor(sb, round, files));
    const delay = Math.floor(Math.random() * duration * (round % 2 === 0 ? 1.2 : 0.5));
    const timer = setTimeout(() => child.kill("SIGKILL"), delay);
    const [code, signal] = (await once(child, "exit")) as [number | null, string | null];
    clearTimeout(timer);
    if (signal === "SIGKILL") killedMidway++;
    else assert.equal(code, 0);
    assertComplete(sb);
  }
  t.diagnostic(`an activation takes ${duration} ms; ${killedMidway} of ${round} were killed before finishing`);
  assert.ok(killedMidway > 0, "the test killed at least one activation mid-way");
  const last = sb.run(manifestFor(sb, 99, files));
  assert.equal(last.status, 0, last.stderr);
  assertComplete(sb);
  assert.equal(readdirSync(sb.mountPoint).filter((e) => /^\d+$/.test(e)).length, 1, "old and aborted generations pruned");
});

test("concurrent activations are serialised by the lock", async (t) => {
  const sb = new Sandbox("concurrent");
  t.after(() => sb.cleanup());
  const files = new Map<number, string[]>();
  const manifests = [0, 1, 2, 3].map((v) => manifestFor(sb, v, files));
  const children = manifests.map((m) => sb.start(m));
  const codes = await Promise.all(children.map(async (c) => ((await once(c, "exit")) as [number | null])[0]));
  assert.deepEqual(codes, [0, 0, 0, 0]);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/4`, "four activations, four generations, none lost to a race");
  assert.deepEqual(readdirSync(sb.mountPoint).filter((e) => /^\d+$/.test(e)), ["4"]);
  assertComplete(sb);
});
