// The plain bundle's V8 code caches (src/code-cache.ts, made by scripts/bundle.mjs): this node
// accepts the build's, an activation through the plain bundle loads agenixd and sshpk with them,
// and a cache V8 or agenixd must not use (other V8 flags, damaged, another script's, missing)
// leaves the script compiled as node would, with the same secrets installed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CODE_CACHE_WARM_UP } from "../src/warm-up.js";
import { launchEnv } from "../scripts/launch.js";
import { ENTRIES, Sandbox } from "./helpers/sandbox.js";

const dist = fileURLToPath(new URL("../../dist/", import.meta.url));

/** Runs `agenixd ARGS` through dist's loader in a child node and returns what became of each cache. */
function activateReporting(dir: string, args: string[], nodeFlags: string[] = []): { status: number | null; stderr: string; caches: Record<string, string> } {
  const loader = JSON.stringify(join(dir, "agenixd.cjs"));
  const program = `
    const loader = require(${loader});
    process.argv = [process.argv[0], ${loader}, ...${JSON.stringify(args)}];
    process.on("exit", () => require("node:fs").writeSync(3, JSON.stringify(Object.fromEntries(loader.codeCacheUse().map((u) => [require("node:path").basename(u.file), u.cache])))));
    loader.loadScript(require("node:path").join(${JSON.stringify(dir)}, loader.MAIN_SCRIPT));`;
  const r = spawnSync(process.execPath, [...nodeFlags, "-e", program], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe", "pipe"], env: launchEnv({ ...process.env, NOTIFY_SOCKET: "" }) });
  const report = (r.output[3] as string | null) ?? "";
  return { status: r.status, stderr: r.stderr, caches: report ? (JSON.parse(report) as Record<string, string>) : {} };
}

test("the build's code caches are accepted, and an activation through the plain bundle runs agenixd and sshpk from them", (t) => {
  const sb = new Sandbox("code-cache");
  t.after(() => sb.cleanup());
  const r = activateReporting(dist, ["activate", "--manifest", sb.manifest([{ name: "a", plaintext: "from the cache" }])]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.caches, { "agenixd-main.cjs": "accepted", "sshpk.cjs": "accepted" });
  assert.equal(sb.read("a"), "from the cache");
});

test("under other V8 flags node rejects the caches, and the plain bundle still activates", (t) => {
  const sb = new Sandbox("code-cache-flags");
  t.after(() => sb.cleanup());
  const manifest = sb.manifest([{ name: "a", plaintext: "compiled afresh" }]);
  const r = activateReporting(dist, ["activate", "--manifest", manifest], ["--no-opt"]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.caches, { "agenixd-main.cjs": "rejected", "sshpk.cjs": "rejected" });
  assert.equal(sb.read("a"), "compiled afresh");
  const direct = sb.run(manifest, [], ["--no-opt", ...ENTRIES.bundle]);
  assert.equal(direct.status, 0, direct.stderr);
});

test("a damaged cache, another script's cache and a missing one are not used, and the secrets are the same", (t) => {
  const copy = mkdtempSync("/tmp/agenixd-code-cache-");
  t.after(() => rmSync(copy, { recursive: true, force: true }));
  cpSync(dist, copy, { recursive: true });
  const sb = new Sandbox("code-cache-damaged");
  t.after(() => sb.cleanup());
  const manifest = sb.manifest([{ name: "a", plaintext: "still installed" }]);

  // 100 bytes flipped in the middle of V8's data, which V8 itself would not notice.
  const sshpkCache = join(copy, "sshpk.code-cache");
  const bytes = readFileSync(sshpkCache);
  for (let i = bytes.length >> 1; i < (bytes.length >> 1) + 100; i++) bytes[i] = bytes[i]! ^ 0xff;
  writeFileSync(sshpkCache, bytes);
  // agenixd-main.cjs given sshpk's intact cache, from the build.
  writeFileSync(join(copy, "agenixd-main.code-cache"), readFileSync(join(dist, "sshpk.code-cache")));
  let r = activateReporting(copy, ["activate", "--manifest", manifest]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.caches, { "agenixd-main.cjs": "rejected", "sshpk.cjs": "rejected" });
  assert.equal(sb.read("a"), "still installed");

  renameSync(sshpkCache, `${sshpkCache}.gone`);
  r = activateReporting(copy, ["activate", "--manifest", manifest]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.caches["sshpk.cjs"], "none");
});

test("produceCodeCaches' warm-up symbol is the one src/main.ts reads", () => {
  assert.equal(CODE_CACHE_WARM_UP, Symbol.for("agenixd.codeCacheWarmUp"));
  assert.match(readFileSync(join(dist, "agenixd.cjs"), "utf8"), /Symbol\.for\("agenixd\.codeCacheWarmUp"\)/);
});
