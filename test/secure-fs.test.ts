import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync, chownSync, lchownSync, lstatSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, rmdirSync, statSync, symlinkSync, writeFileSync, readlinkSync, mkdirSync,
} from "node:fs";
import { join } from "node:path";
import {
  Dirs, TrustError, makeDirs, readFileNoFollow, replaceWithFile, replaceWithFileIn, replaceWithSymlink, writeNewFile, type DirsHooks, type Ownership, type Trust,
} from "../src/secure-fs.js";

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

// Dirs: the way to a path outside the ramfs, walked without following symlinks, checked, held open.

const ROOT_OR_4242: Trust = { uids: [4242], gids: [4343], who: "root or the secret's owner" };
const ROOT: Trust = { uids: [], gids: [], who: "root" };
const MKDIR: Ownership = { uid: -1, gid: -1, mode: 0o755 };

function withDirs(t: { after(fn: () => void): void }, hooks?: DirsHooks): Dirs {
  const dirs = new Dirs(hooks);
  t.after(() => dirs.close());
  return dirs;
}

test("Dirs.dir creates missing parents 0755 and writes through the held directory", (t) => {
  const dir = tmp(t);
  const dirs = withDirs(t);
  const held = dirs.dir(join(dir, "a/b/c"), ROOT, MKDIR);
  for (const d of ["a", "a/b", "a/b/c"]) {
    const st = lstatSync(join(dir, d));
    assert.ok(st.isDirectory());
    assert.equal(st.mode & 0o7777, 0o755, d);
    assert.equal(st.uid, 0);
  }
  replaceWithFileIn(held, "f", Buffer.from("x"), { uid: 4242, gid: 4343, mode: 0o440 });
  assert.equal(readFileSync(join(dir, "a/b/c/f"), "utf8"), "x");
  assert.equal(statSync(join(dir, "a/b/c/f")).uid, 4242);
  assert.equal(dirs.dir(join(dir, "a/b/c"), ROOT), held, "held for the rest of the activation");
  assert.throws(() => dirs.dir(join(dir, "missing/x"), ROOT), (e: Error) => e.message === `${join(dir, "missing")} does not exist`);
});

test("Dirs.dir refuses a symlink a user could have made or swapped, in place of any parent, and creates nothing through it", (t) => {
  const dir = tmp(t);
  const victim = join(dir, "rootonly");
  mkdirSync(victim, { mode: 0o700 });
  mkdirSync(join(dir, "srv"));
  chownSync(join(dir, "srv"), 4242, 4242); // the secret's owner's directory: trusted to write into, not to redirect
  symlinkSync(victim, join(dir, "srv/app"));
  const dirs = withDirs(t);
  assert.throws(
    () => dirs.dir(join(dir, "srv/app/sub"), ROOT_OR_4242, MKDIR),
    (e: Error) => e.message === `${join(dir, "srv/app")} is a symlink (not followed)`,
  );
  writeFileSync(join(dir, "file"), "");
  assert.throws(() => dirs.dir(join(dir, "file/sub"), ROOT, MKDIR), (e: Error) => e.message === `${join(dir, "file")} is not a directory`);
  assert.deepEqual(readdirSync(victim), []);
  assert.equal(statSync(victim).mode & 0o7777, 0o700);

  // A user's symlink in a sticky directory (like /tmp), even one root owns, is not followed either.
  const sticky = join(dir, "sticky");
  mkdirSync(sticky);
  chmodSync(sticky, 0o1777);
  symlinkSync(victim, join(sticky, "app"));
  lchownSync(join(sticky, "app"), 4242, 4242);
  assert.throws(() => withDirs(t).dir(join(sticky, "app/sub"), ROOT_OR_4242, MKDIR), /sticky\/app is a symlink \(not followed\)$/);
  assert.deepEqual(readdirSync(victim), []);
});

test("Dirs.dir follows root's own symlinks in directories only root can change (/var/run -> ../run)", (t) => {
  const dir = tmp(t);
  mkdirSync(join(dir, "var"));
  mkdirSync(join(dir, "run"));
  symlinkSync("../run", join(dir, "var/run"));
  symlinkSync(join(dir, "run"), join(dir, "abs"));
  const dirs = withDirs(t);
  const held = dirs.dir(join(dir, "var/run/app"), ROOT_OR_4242, MKDIR);
  assert.equal(held.path, join(dir, "run/app"));
  replaceWithFileIn(held, "token", Buffer.from("t"), { uid: 4242, gid: 4343, mode: 0o400 });
  assert.equal(readFileSync(join(dir, "run/app/token"), "utf8"), "t");
  assert.equal(dirs.dir(join(dir, "abs/app"), ROOT_OR_4242), held);
  symlinkSync("loop2", join(dir, "loop1"));
  symlinkSync("loop1", join(dir, "loop2"));
  assert.throws(() => withDirs(t).dir(join(dir, "loop1/x"), ROOT, MKDIR), /more than 40 symlinks on the way$/);
});

test("Dirs.dir refuses a directory owned, or writable, by someone else than root or the secret's owner; checks before creating in it", (t) => {
  const dir = tmp(t);
  const svc = join(dir, "svc");
  mkdirSync(svc);
  chownSync(svc, 1000, 1000);
  const dirs = withDirs(t);
  assert.throws(
    () => dirs.dir(join(svc, "sub"), ROOT_OR_4242, MKDIR),
    (e: Error) => e instanceof TrustError && e.message === `${svc} is owned by uid 1000, not root or the secret's owner`,
  );
  assert.deepEqual(readdirSync(svc), [], "nothing was created in the refused directory");
  // The same directory held open is refused for another secret too: trust is checked per call.
  chownSync(svc, 4242, 4242);
  const dirs2 = withDirs(t);
  dirs2.dir(join(svc, "sub"), ROOT_OR_4242, MKDIR);
  assert.throws(() => dirs2.dir(join(svc, "sub"), ROOT, MKDIR), /svc is owned by uid 4242, not root$/);

  const open = join(dir, "open");
  mkdirSync(open);
  chmodSync(open, 0o777);
  assert.throws(() => withDirs(t).dir(join(open, "x"), ROOT, MKDIR), (e: Error) => e.message === `${open} is writable by every user (mode 0777, no sticky bit)`);
  chmodSync(open, 0o1777);
  withDirs(t).dir(join(open, "x"), ROOT, MKDIR); // like /tmp: others cannot rename what root made there

  const shared = join(dir, "shared");
  mkdirSync(shared);
  chownSync(shared, 0, 5000);
  chmodSync(shared, 0o775);
  assert.throws(() => withDirs(t).dir(join(shared, "x"), ROOT_OR_4242, MKDIR), (e: Error) => e.message === `${shared} is writable by group 5000 (mode 0775), not only by root or the secret's owner`);
  chownSync(shared, 0, 4343);
  withDirs(t).dir(join(shared, "x"), ROOT_OR_4242, MKDIR); // the secret's own group
});

test("a mkdir race: a directory replaced between mkdir and open is refused, and what replaced it is not chmodded", (t) => {
  const dir = tmp(t);
  // The secret's owner (4242) owns the directory the new one is made in, so may swap entries in it.
  const home = join(dir, "home");
  mkdirSync(home);
  chownSync(home, 4242, 4242);
  const victimFile = join(dir, "shadow");
  writeFileSync(victimFile, "x", { mode: 0o600 });
  const victimDir = join(home, "root-private"); // root's, in the user's tree: the user can move it, not read it
  mkdirSync(victimDir, { mode: 0o700 });
  writeFileSync(join(victimDir, "inside"), "x");

  // The user swaps the new directory for a symlink to a file root must not chmod.
  const swapToSymlink: DirsHooks = {
    afterMkdir(path) {
      rmdirSync(path);
      symlinkSync(victimFile, path);
      lchownSync(path, 4242, 4242);
    },
  };
  assert.throws(() => withDirs(t, swapToSymlink).dir(join(home, "a"), ROOT_OR_4242, MKDIR), /home\/a is a symlink \(not followed\)$/);
  assert.equal(statSync(victimFile).mode & 0o7777, 0o600);

  // ... or for another root-owned directory.
  const swapToDir: DirsHooks = {
    afterMkdir(path) {
      rmdirSync(path);
      renameSync(victimDir, path);
    },
  };
  assert.throws(() => withDirs(t, swapToDir).dir(join(home, "b"), ROOT_OR_4242, MKDIR), (e: Error) => e.message === `${join(home, "b")} was replaced while it was being created`);
  assert.equal(statSync(join(home, "b")).mode & 0o7777, 0o700, "not made 0755");
});

test("a held directory renamed away and replaced by a symlink: the write stays in the directory that was checked", (t) => {
  const dir = tmp(t);
  const victim = join(dir, "rootonly");
  mkdirSync(victim, { mode: 0o700 });
  mkdirSync(join(dir, "home/u/.ssh"), { recursive: true });
  const dirs = withDirs(t, {
    beforeOpen(path) {
      if (path !== join(dir, "home/u/.ssh")) return;
      // The parent is held; swap it for a symlink before the child is opened.
      renameSync(join(dir, "home/u"), join(dir, "home/u-moved"));
      symlinkSync(victim, join(dir, "home/u"));
      mkdirSync(join(victim, ".ssh"));
    },
  });
  const ssh = dirs.dir(join(dir, "home/u/.ssh"), ROOT_OR_4242, MKDIR);
  replaceWithFileIn(ssh, "key", Buffer.from("k"), { uid: 4242, gid: 4343, mode: 0o400 });
  assert.deepEqual(readdirSync(join(victim, ".ssh")), [], "nothing written through the symlink");
  assert.equal(readFileSync(join(dir, "home/u-moved/.ssh/key"), "utf8"), "k");
});

test("removeStaleTemps removes the temp files and symlinks of one target, not others' or directories", (t) => {
  const dir = tmp(t);
  const names = [".key.agenixd-0123456789ab", ".key.agenixd-ffffffffffff", ".other.agenixd-0123456789ab", ".key.agenixd-short", "key"];
  for (const n of names) writeFileSync(join(dir, n), "partial");
  symlinkSync("/run/agenix.d/3", join(dir, ".key.agenixd-aaaaaaaaaaaa"));
  mkdirSync(join(dir, ".key.agenixd-bbbbbbbbbbbb"));
  const dirs = withDirs(t);
  const held = dirs.dir(dir, ROOT);
  assert.deepEqual(dirs.removeStaleTemps(held, "key").sort(), [".key.agenixd-0123456789ab", ".key.agenixd-aaaaaaaaaaaa", ".key.agenixd-ffffffffffff"]);
  assert.deepEqual(readdirSync(dir).sort(), [".key.agenixd-bbbbbbbbbbbb", ".key.agenixd-short", ".other.agenixd-0123456789ab", "key"]);
  assert.deepEqual(dirs.removeStaleTemps(held, "key"), []);
});

test("Dirs.close closes every directory it held", (t) => {
  const dir = tmp(t);
  const count = () => readdirSync("/proc/self/fd").length;
  const before = count();
  const dirs = new Dirs();
  dirs.dir(join(dir, "a/b/c"), ROOT, MKDIR);
  assert.ok(count() > before);
  dirs.close();
  assert.equal(count(), before);
});

test("errors name the real path and say in words what is wrong", (t) => {
  const dir = tmp(t);
  const dirs = withDirs(t);
  const held = dirs.dir(dir, ROOT);
  mkdirSync(join(dir, "d"));
  assert.throws(() => replaceWithFileIn(held, "d", Buffer.from("x"), { uid: 0, gid: 0, mode: 0o400 }), (e: Error) => e.message === `refusing to replace the directory ${join(dir, "d")}`);
  assert.throws(() => readFileNoFollow(join(dir, "nothing")), (e: Error) => e.message === `${join(dir, "nothing")} does not exist`);
  symlinkSync("/etc/passwd", join(dir, "l"));
  assert.throws(() => readFileNoFollow(join(dir, "l")), (e: Error) => e.message === `${join(dir, "l")} is a symlink`);
});
