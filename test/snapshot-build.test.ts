// The startup snapshot is built in the Nix sandbox, without root's powers: its warm-up
// (src/snapshot.ts) runs whole activations, which must then need neither mount(2) nor chown to
// another user. Here the build runs with every capability dropped (uid 0 without CAP_SYS_ADMIN,
// CAP_CHOWN, CAP_DAC_OVERRIDE, …), then the blob it made has to start and install a secret.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Sandbox } from "./helpers/sandbox.js";
import { snapshotArgs } from "../scripts/launch.js";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

test("the snapshot builds without privileges, and the blob it makes activates", (t) => {
  const out = mkdtempSync("/tmp/agenixd-unprivileged-build-");
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const outdir = join(out, "dist");

  const capabilities = spawnSync("setpriv", ["--bounding-set=-all", "--no-new-privs", "grep", "^CapEff", "/proc/self/status"], { encoding: "utf8" });
  assert.equal(capabilities.status, 0, capabilities.stderr);
  assert.match(capabilities.stdout, /^CapEff:\s+0+$/m, "setpriv should leave no effective capability");

  const build = spawnSync("setpriv", ["--bounding-set=-all", "--no-new-privs", process.execPath, "scripts/bundle.mjs"], {
    cwd: repoRoot,
    env: { ...process.env, AGENIXD_BUNDLE_OUTDIR: outdir },
    encoding: "utf8",
  });
  assert.equal(build.status, 0, `the unprivileged build failed:\n${build.stderr}`);
  assert.equal(build.stderr, "", "the build warns of nothing unexpected");

  // The blob finds agenixd's addon (flock, core dumps off) beside itself, in the build's dist/.
  const sb = new Sandbox("unprivileged-build");
  t.after(() => sb.cleanup());
  const r = sb.run(sb.manifest([{ name: "db-password", plaintext: "hunter2" }]), [], snapshotArgs(join(outdir, "agenixd.blob")));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(sb.read("db-password"), "hunter2");
});

test("two builds differ only in a few dozen bytes of Node's own state in the blob", (t) => {
  // Node 20 keeps in any snapshot, even of an empty script, timings and pids of the build that
  // made it, the values of the last stat(2) and a checksum over them (docs/performance.md):
  // no two blobs are byte-identical. Everything else is: the warm-up's keys, files and clock are
  // fixed, V8's seeds too (--random-seed). A build that drew its own keys or seed differs in
  // thousands of bytes to millions.
  const out = mkdtempSync("/tmp/agenixd-reproducible-");
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const outdir = join(out, "dist");
  const builds: Map<string, Buffer>[] = [];
  for (let i = 0; i < 2; i++) {
    const build = spawnSync(process.execPath, ["scripts/bundle.mjs"], { cwd: repoRoot, env: { ...process.env, AGENIXD_BUNDLE_OUTDIR: outdir }, encoding: "utf8" });
    assert.equal(build.status, 0, build.stderr);
    builds.push(new Map(readdirSync(outdir).map((f) => [f, readFileSync(join(outdir, f))])));
  }
  const [first, second] = builds as [Map<string, Buffer>, Map<string, Buffer>];
  assert.deepEqual([...first.keys()].sort(), [...second.keys()].sort());
  for (const [file, bytes] of first) {
    if (file === "agenixd.blob") continue;
    assert.ok(bytes.equals(second.get(file)!), `${file} differs between two builds`);
  }
  const [a, b] = [first.get("agenixd.blob")!, second.get("agenixd.blob")!];
  assert.equal(a.length, b.length, "the blobs' sizes differ");
  let differing = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differing++;
  t.diagnostic(`${differing} of ${a.length} bytes differ`);
  assert.ok(differing < 200, `${differing} bytes of the blob differ between two builds`);
});
