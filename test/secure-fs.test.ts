import { test } from "node:test";
import assert from "node:assert/strict";
import { lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, readlinkSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { makeDirs, readFileNoFollow, replaceWithFile, replaceWithSymlink, writeNewFile } from "../src/secure-fs.js";

function tmp(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync("/tmp/agenixd-securefs-");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("writeNewFile sets owner and mode before writing and refuses an existing entry or a planted symlink", (t) => {
  const dir = tmp(t);
  const victim = join(dir, "victim");
  writeFileSync(victim, "original");
  symlinkSync(victim, join(dir, "planted"));
  assert.throws(() => writeNewFile(join(dir, "planted"), Buffer.from("x"), { uid: 0, gid: 0, mode: 0o400 }), { code: "EEXIST" });
  assert.equal(readFileSync(victim, "utf8"), "original");
  assert.throws(() => writeNewFile(victim, Buffer.from("x"), { uid: 0, gid: 0, mode: 0o400 }), { code: "EEXIST" });

  writeNewFile(join(dir, "new"), Buffer.from("data"), { uid: 4242, gid: 4343, mode: 0o640 });
  const st = statSync(join(dir, "new"));
  assert.equal(st.mode & 0o7777, 0o640);
  assert.equal(st.uid, 4242);
  assert.equal(st.gid, 4343);
  assert.equal(readFileSync(join(dir, "new"), "utf8"), "data");
});

test("readFileNoFollow refuses a symlink", (t) => {
  const dir = tmp(t);
  writeFileSync(join(dir, "f"), "x");
  symlinkSync(join(dir, "f"), join(dir, "l"));
  assert.throws(() => readFileNoFollow(join(dir, "l")), { code: "ELOOP" });
  assert.equal(readFileNoFollow(join(dir, "f")).data.toString(), "x");
});

test("replaceWithFile and replaceWithSymlink replace a planted symlink itself and refuse directories", (t) => {
  const dir = tmp(t);
  const victim = join(dir, "victim");
  writeFileSync(victim, "original");
  symlinkSync(victim, join(dir, "target"));
  replaceWithFile(join(dir, "target"), Buffer.from("new"), { uid: 0, gid: 0, mode: 0o400 });
  assert.equal(readFileSync(victim, "utf8"), "original");
  assert.ok(lstatSync(join(dir, "target")).isFile());

  replaceWithSymlink(join(dir, "target"), "/run/agenix/x");
  assert.equal(readlinkSync(join(dir, "target")), "/run/agenix/x");

  mkdirSync(join(dir, "d"));
  assert.throws(() => replaceWithFile(join(dir, "d"), Buffer.from("x"), { uid: 0, gid: 0, mode: 0o400 }), /refusing to replace the directory/);
  assert.throws(() => replaceWithSymlink(join(dir, "d"), "/x"), /refusing to replace the directory/);
});

test("makeDirs creates nested directories with the given mode and refuses a symlink on the way", (t) => {
  const dir = tmp(t);
  makeDirs(dir, "a/b/c", { uid: 0, gid: 4343, mode: 0o751 });
  assert.equal(statSync(join(dir, "a/b/c")).mode & 0o7777, 0o751);
  assert.equal(statSync(join(dir, "a/b")).gid, 4343);
  symlinkSync("/etc", join(dir, "x"));
  assert.throws(() => makeDirs(dir, "x/y", { uid: 0, gid: 0, mode: 0o751 }), /exists and is not a directory/);
});
