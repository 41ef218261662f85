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
import { SNAPSHOT_BLOB, Sandbox } from "./helpers/sandbox.js";
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

test("an activation from the blob compiles none of the functions the warm-up ran: the blob keeps their bytecode", (t) => {
  // scripts/bundle.mjs builds with code cache (V8 keeps compiled functions; `withoutCodeCache`
  // would drop them), then cuts node's built-in code cache out. V8 logs each function it
  // compiles (--log-function-events: "function,interpreter,<script>,…,<name>").
  const sb = new Sandbox("kept-bytecode");
  t.after(() => sb.cleanup());
  const log = join(sb.root, "v8.log");
  const r = sb.run(sb.manifest([{ name: "a" }]), [], ["--log-function-events", `--logfile=${log}`, "--no-logfile-per-isolate", ...snapshotArgs(SNAPSHOT_BLOB)]);
  assert.equal(r.status, 0, r.stderr);
  const lines = readFileSync(log, "utf8").split("\n").map((l) => l.split(","));
  const script = lines.find((f) => f[0] === "script-details" && f[2]?.endsWith("/agenixd-snapshot.cjs"))?.[1];
  assert.ok(script, "V8 logged agenixd's snapshot script");
  const compiled = lines.filter((f) => f[0] === "function" && f[1] === "interpreter" && f[2] === script).map((f) => f[7] ?? "");
  t.diagnostic(`compiled at the start: ${compiled.join(" ")}`);
  for (const warmedUp of ["activate", "plan", "loadIdentities", "parseSshKey", "decryptAll", "writeGeneration", "commit", "react", "readManifest", "parseCommand"]) {
    assert.ok(!compiled.includes(warmedUp), `${warmedUp} was compiled again at the start`);
  }
  // What is left runs only after a start (src/snapshot.ts's deserialize main, main(), the addon's loading): a few dozen at most.
  assert.ok(compiled.length < 40, `${compiled.length} of agenixd's functions were compiled at the start`);
});
