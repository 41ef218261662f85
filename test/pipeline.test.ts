// activate()'s four stages one by one, as root on a real ramfs in a private mount namespace: what
// each stage has done, and not yet done, when the next one starts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chownSync, existsSync, mkdirSync, openSync, readFileSync, readlinkSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Sandbox } from "./helpers/sandbox.js";
import { commit, plan, react, writeGeneration, zeroPlan, type ActivationContext, type Host } from "../src/activate.js";
import { readManifest } from "../src/manifest.js";
import { createLogger } from "../src/log.js";
import { createNotifier } from "../src/notify.js";
import { ensureRamfs, isRamfs } from "../src/ramfs.js";
import { readAccounts } from "../src/accounts.js";
import { Dirs } from "../src/secure-fs.js";
import { loadNativeAddon } from "../src/native.js";

// The stages run in this process: the ramfs is mounted with mount(2) through the addon, as the CLI loads it.
loadNativeAddon(new URL("../src/ramfs.js", import.meta.url));

const host: Host = { rootUid: 0, ensureRamfs, readAccounts };

function context(): ActivationContext {
  return { log: createLogger({ pretty: false, fd: openSync("/dev/null", "w") }), notify: createNotifier({}, { notify() {} }), host };
}

test("plan writes nothing, write makes a generation nothing points at, commit swaps it in, react records it", async (t) => {
  const sb = new Sandbox("stages");
  t.after(() => sb.cleanup());
  const manifest = readManifest(sb.manifest([{ name: "a", plaintext: "one" }, { name: "b", plaintext: "two" }]));
  const ctx = context();

  const p = await plan(manifest, "all", ctx, host);
  assert.equal(p.verdict, "write");
  assert.deepEqual(p.changes.map((c) => [c.name, c.kind]), [["a", "added"], ["b", "added"]]);
  await p.mounted;
  assert.ok(isRamfs(sb.mountPoint), "the mount the plan started is a ramfs");
  assert.deepEqual(readdirSync(sb.mountPoint), [], "the plan wrote no file");
  assert.ok(!existsSync(sb.secretsDir));

  const dirs = new Dirs();
  try {
    const w = await writeGeneration(p, ctx, host, dirs);
    assert.equal(w.generation, 1);
    assert.deepEqual(w.installed, ["a", "b"]);
    assert.ok(existsSync(`${sb.mountPoint}/1/a`));
    assert.ok(!existsSync(sb.secretsDir), "a written generation is not live before commit");

    commit(p, w, ctx, host, dirs);
    assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/1`);
    assert.equal(sb.read("b"), "two");

    const result = await react(p, w, ctx, host, {});
    assert.equal(result.swapped, true);
    assert.equal(result.generation, 1);
  } finally {
    dirs.close();
    zeroPlan(p);
  }
  for (const d of p.decrypted) if (d.ok) assert.ok(d.plaintext.every((b) => b === 0), `${d.secret.name} zeroed`);
});

test("plan of an unchanged dry run says so and starts no mount", async (t) => {
  const sb = new Sandbox("stages-dry");
  t.after(() => sb.cleanup());
  const manifest = readManifest(sb.manifest([{ name: "a", plaintext: "one" }]));
  const p = await plan(manifest, "all", context(), host, true);
  try {
    assert.equal(p.verdict, "dry-run");
    assert.ok(!isRamfsSafe(sb.mountPoint), "a dry run mounts nothing");
  } finally {
    zeroPlan(p);
  }
});

test("plan keeps the live generation when every secret fails", async (t) => {
  const sb = new Sandbox("stages-keep");
  t.after(() => sb.cleanup());
  const good = sb.manifest([{ name: "a", plaintext: "one" }]);
  assert.equal(sb.run(good).status, 0);
  const manifest = readManifest(good);
  const broken = { ...manifest, identityPaths: [] };
  const p = await plan(broken, "all", context(), host);
  try {
    assert.equal(p.verdict, "keep");
    assert.equal(p.previous, 1);
    assert.deepEqual(p.failed.map((f) => [f.name, f.keptPrevious]), [["a", true]]);
  } finally {
    zeroPlan(p);
  }
});

function isRamfsSafe(path: string): boolean {
  try {
    return isRamfs(path);
  } catch {
    return false;
  }
}

test("write changes nothing outside the new generation; commit installs the paths outside secretsDir, and one it cannot install is that item's failure", async (t) => {
  const sb = new Sandbox("stages-outside");
  t.after(() => sb.cleanup());
  const srv = join(sb.root, "srv");
  mkdirSync(join(srv, "app"), { recursive: true });
  const copy = join(srv, "app", "token");
  const link = join(srv, "app", "db-link");
  writeFileSync(copy, "token v0");
  // A directory another user owns: root refuses to install through it (src/secure-fs.ts).
  const theirs = join(srv, "theirs");
  mkdirSync(theirs);
  chownSync(theirs, 65534, 65534);
  const manifest = readManifest(
    sb.manifest([
      { name: "token", plaintext: "token v1", path: copy, symlink: false },
      { name: "db", plaintext: "db v1", path: link },
      { name: "refused", plaintext: "r", path: join(theirs, "r"), symlink: false },
    ]),
  );
  const ctx = context();
  const p = await plan(manifest, "all", ctx, host);
  const dirs = new Dirs();
  try {
    const w = await writeGeneration(p, ctx, host, dirs);
    assert.deepEqual(w.installed, ["token", "db", "refused"], "all three are in the generation");
    assert.equal(readFileSync(`${sb.mountPoint}/1/token`, "utf8"), "token v1");
    assert.equal(readFileSync(copy, "utf8"), "token v0", "the copy outside is not touched by write");
    assert.ok(!existsSync(link), "nor is the link made");
    assert.deepEqual(readdirSync(theirs), []);

    commit(p, w, ctx, host, dirs);
    assert.equal(readFileSync(copy, "utf8"), "token v1");
    assert.equal(readlinkSync(link), `${sb.secretsDir}/db`);
    assert.equal(readFileSync(link, "utf8"), "db v1");
    assert.deepEqual(w.installed, ["token", "db"]);
    assert.deepEqual(w.failed.map((f) => [f.name, f.keptPrevious]), [["refused", false]]);
    assert.match(w.failed[0]!.cause, /^refusing to install refused at .*\/theirs\/r: .*owned by uid 65534/);
    assert.deepEqual(readdirSync(theirs), [], "nothing written through the user's directory");
  } finally {
    dirs.close();
    zeroPlan(p);
  }
});
