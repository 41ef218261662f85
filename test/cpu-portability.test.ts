// The snapshot starts on CPUs other than the build machine's (binary caches, remote builders,
// deploys from another machine): dist/agenixd.blob, built here, run by bin/agenixd under
// qemu-user with other x86-64 CPU models. node would refuse a blob tagged with this CPU's
// features (Node 20 did, on every CPU without AVX2); the launcher says so when it falls back,
// and this asserts it did not and that agenixd ran from the snapshot.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import assert from "node:assert/strict";
import { installLauncher, makeBlobOfAnotherNodeRelease } from "./helpers/launcher.js";
import { Sandbox } from "./helpers/sandbox.js";

const FALLBACK = /agenixd: node did not start the snapshot/;
// Without AVX (Nehalem: Proxmox's x86-64-v2 class), with AVX2 (Skylake-Client), AMD's (EPYC),
// and QEMU's baseline (qemu64: no SSSE3, no SSE4).
const MODELS = ["Nehalem", "Skylake-Client", "EPYC", "qemu64"];

/** bin/agenixd for a copy of dist/ in `dir`, whose node is this node, emulated as `model` if one is given. */
function launcher(dir: string, model?: string, change?: (dist: string) => void): string {
  mkdirSync(dir);
  if (model === undefined) return installLauncher(dir, {}, change);
  const node = join(dir, "node");
  writeFileSync(node, `#!/bin/sh\nexec qemu-x86_64 -cpu ${model} ${process.execPath} "$@"\n`, { mode: 0o755 });
  return installLauncher(dir, { node }, change);
}

/**
 * Activates natively, then runs `agenixd status` on the emulated CPU: qemu-user cannot run node's
 * child processes (libuv's spawn crashes it), so the activation itself, which runs mount(8), is not
 * emulated; status runs agenixd's own code (the manifest, the live generation, every secret's
 * metadata) from the snapshot.
 */
function statusOn(model: string, change?: (dist: string) => void) {
  const dir = mkdtempSync(`/tmp/agenixd-cpu-${model}-`);
  const sb = new Sandbox(`cpu-${model}`);
  try {
    const manifest = sb.manifest([{ name: "a", plaintext: `on ${model}` }]);
    const activated = spawnSync(launcher(join(dir, "native")), ["activate", "--manifest", manifest], { encoding: "utf8", env: { ...process.env, NOTIFY_SOCKET: "" } });
    assert.equal(activated.status, 0, activated.stderr);
    const r = spawnSync(launcher(join(dir, "emulated"), model, change), ["status", "--manifest", manifest, "--json"], { encoding: "utf8", timeout: 300_000 });
    return { ...r, content: sb.read("a") };
  } finally {
    sb.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

const onX64 = process.arch === "x64" ? {} : { skip: `qemu-x86_64 emulates x86-64 CPUs; this host is ${process.arch}` };

for (const model of MODELS) {
  test(`the snapshot built on this CPU starts under qemu-x86_64 -cpu ${model}, without falling back`, onX64, () => {
    const r = statusOn(model);
    assert.equal(r.status, 0, r.stderr.slice(-3000));
    assert.doesNotMatch(r.stderr, FALLBACK);
    const status = JSON.parse(r.stdout) as { generation: number; secrets: Array<{ name: string }> };
    assert.equal(status.generation, 1, r.stdout);
    assert.deepEqual(status.secrets.map((s) => s.name), ["a"]);
    assert.equal(r.content, `on ${model}`);
  });
}

test("under emulation too, a blob node refuses is reported and the plain bundle runs (the check above can fail)", onX64, () => {
  const r = statusOn("Nehalem", (dist) => makeBlobOfAnotherNodeRelease(join(dist, "agenixd.blob")));
  assert.equal(r.status, 0, r.stderr.slice(-3000));
  assert.match(r.stderr, FALLBACK);
  assert.equal((JSON.parse(r.stdout) as { generation: number }).generation, 1);
});
