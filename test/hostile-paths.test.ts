// A local user must not turn agenixd's root writes against the host (issue 13.1, 13.6): the
// directories above a secret's path, secretsDir and the mount point are walked without following
// symlinks and must belong to root or the secret's owner; leftovers of a killed run are cleaned;
// a filesystem already on the mount point is refused, not hidden.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chownSync, existsSync, lchownSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AGENIXD, Sandbox, fsType, parseLogs, withUser } from "./helpers/sandbox.js";
import { launchEnv } from "../scripts/launch.js";

function mode(path: string): number {
  return statSync(path).mode & 0o7777;
}

function errorFor(logs: Array<Record<string, unknown>>, secret: string): Record<string, unknown> | undefined {
  return logs.find((l) => l.level === "error" && l.secret === secret);
}

test("a parent owned by another user is refused for that secret alone, with one clear error; nothing is written in it", (t) => {
  const user = withUser("agxtest-svc");
  const sb = new Sandbox("parent-owner");
  t.after(() => {
    sb.cleanup();
    user.remove();
  });
  const svc = join(sb.root, "var/lib/svc");
  mkdirSync(svc, { recursive: true });
  chownSync(svc, user.uid, user.gid);
  const path = join(svc, "sub/x");
  const r = sb.run(sb.manifest([{ name: "db/pw", path, symlink: false }, { name: "other" }]));
  assert.equal(r.status, 1, r.stderr);
  assert.equal(
    errorFor(r.logs, "db/pw")?.cause,
    `refusing to install db/pw at ${path}: ${svc} is owned by uid ${user.uid}, not root or the secret's owner`,
  );
  assert.deepEqual(readdirSync(svc), [], "no sub directory, no file");
  assert.equal(sb.read("other"), "value of other");
  assert.equal(sb.read("db/pw"), "value of db/pw", "the secret itself is in secretsDir");
});

for (const symlink of [false, true]) {
  test(`a parent swapped for a symlink by the secret's owner is not followed (${symlink ? "symlinked" : "copied"} secret)`, (t) => {
    const user = withUser("agxtest-u");
    const sb = new Sandbox("parent-swap");
    t.after(() => {
      sb.cleanup();
      user.remove();
    });
    const home = join(sb.root, "home/u");
    mkdirSync(home, { recursive: true });
    chownSync(home, user.uid, user.gid);
    const rootOnly = join(sb.root, "run/rootonly");
    mkdirSync(rootOnly, { recursive: true, mode: 0o700 });
    writeFileSync(join(rootOnly, "token"), "root's own file");
    // What the user does in their own home: app -> a directory only root may write.
    symlinkSync(rootOnly, join(home, "app"));
    lchownSync(join(home, "app"), user.uid, user.gid);
    const path = join(home, "app/token");
    const r = sb.run(sb.manifest([{ name: "token", path, owner: "agxtest-u", symlink }]));
    assert.equal(r.status, 1, r.stderr);
    assert.equal(errorFor(r.logs, "token")?.cause, `cannot install token at ${path}: ${join(home, "app")} is a symlink (not followed)`);
    assert.deepEqual(readdirSync(rootOnly), ["token"]);
    assert.equal(readFileSync(join(rootOnly, "token"), "utf8"), "root's own file");
    assert.ok(lstatSync(join(rootOnly, "token")).isFile());
  });
}

test("/home/u/.ssh/key owned by u is accepted: u's own directories are trusted for u's secrets", (t) => {
  const user = withUser("agxtest-home");
  const sb = new Sandbox("home");
  t.after(() => {
    sb.cleanup();
    user.remove();
  });
  const home = join(sb.root, "home/u");
  mkdirSync(home, { recursive: true, mode: 0o700 });
  chownSync(home, user.uid, user.gid);
  const key = join(home, ".ssh/key");
  const r = sb.run(sb.manifest([{ name: "ssh-key", plaintext: "PRIVATE", path: key, owner: "agxtest-home", group: "agxtest-home", symlink: false }]));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(key, "utf8"), "PRIVATE");
  const st = statSync(key);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [user.uid, user.gid, 0o400]);
  assert.equal(mode(join(home, ".ssh")), 0o755, "a missing parent is made like mkdir -p does");
  assert.deepEqual(readdirSync(join(home, ".ssh")), ["key"]);

  // The same directory is refused for a secret owned by someone else.
  const r2 = sb.run(sb.manifest([{ name: "root-key", path: join(home, ".ssh/root-key"), symlink: false }]));
  assert.equal(r2.status, 1);
  assert.match(String(errorFor(r2.logs, "root-key")?.cause), new RegExp(`${home} is owned by uid ${user.uid}, not root or the secret's owner$`));
  assert.deepEqual(readdirSync(join(home, ".ssh")), ["key"]);
});

test("root's own symlinks above a target, in directories only root can change, are followed (/var/run -> ../run)", (t) => {
  const sb = new Sandbox("root-symlink");
  t.after(() => sb.cleanup());
  mkdirSync(join(sb.root, "var"));
  mkdirSync(join(sb.root, "srv"));
  symlinkSync("../srv", join(sb.root, "var/srv"));
  const r = sb.run(sb.manifest([{ name: "token", path: join(sb.root, "var/srv/app/token"), symlink: false }]));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(sb.root, "srv/app/token"), "utf8"), "value of token");
});

test("a world-writable parent without the sticky bit is refused; /tmp-like sticky ones are accepted", (t) => {
  const sb = new Sandbox("world-writable");
  t.after(() => sb.cleanup());
  const open = join(sb.root, "open");
  const sticky = join(sb.root, "sticky");
  mkdirSync(open, { mode: 0o777 });
  mkdirSync(sticky);
  spawnSync("chmod", ["0777", open]);
  spawnSync("chmod", ["1777", sticky]);
  const r = sb.run(sb.manifest([{ name: "a", path: join(open, "a"), symlink: false }, { name: "b", path: join(sticky, "b"), symlink: false }]));
  assert.equal(r.status, 1);
  assert.equal(errorFor(r.logs, "a")?.cause, `refusing to install a at ${join(open, "a")}: ${open} is writable by every user (mode 0777, no sticky bit)`);
  assert.deepEqual(readdirSync(open), []);
  assert.equal(readFileSync(join(sticky, "b"), "utf8"), "value of b");
});

test("secretsDir and secretsMountPoint below a user's directory are refused before anything is written", (t) => {
  const user = withUser("agxtest-run");
  t.after(() => user.remove());
  for (const which of ["secretsDir", "secretsMountPoint"] as const) {
    const sb = new Sandbox(`owned-${which}`);
    t.after(() => sb.cleanup());
    const owned = join(sb.root, "owned");
    mkdirSync(owned);
    chownSync(owned, user.uid, user.gid);
    const path = join(owned, which === "secretsDir" ? "agenix" : "agenix.d");
    const r = sb.run(sb.manifest([{ name: "a" }], { [which]: path }));
    assert.equal(r.status, 1, r.stderr);
    const fatal = r.logs.find((l) => l.level === "fatal");
    // The mount point's lock file, beside it (src/lock.ts), is the first thing agenixd would make there.
    const refused = which === "secretsDir" ? `refusing to use secretsDir ${path}` : `refusing to lock ${owned}/.agenix.d.lock`;
    assert.equal(fatal?.cause, `activation failed: ${refused}: ${owned} is owned by uid ${user.uid}, not root`);
    assert.deepEqual(readdirSync(owned), []);
    if (which === "secretsDir") assert.deepEqual(readdirSync(sb.mountPoint), [], "no generation written");
  }
});

test("missing parents of a custom secretsMountPoint and secretsDir are made 0755, so consumers can reach the secrets", (t) => {
  const sb = new Sandbox("parents-0755");
  const mountPoint = join(sb.root, "deep/a/b/agenix.d");
  const secretsDir = join(sb.root, "other/x/agenix");
  t.after(() => {
    spawnSync("umount", ["-l", mountPoint]);
    sb.cleanup();
  });
  const r = sb.run(sb.manifest([{ name: "a" }], { secretsMountPoint: mountPoint, secretsDir }));
  assert.equal(r.status, 0, r.stderr);
  for (const d of ["deep", "deep/a", "deep/a/b", "other", "other/x"]) assert.equal(mode(join(sb.root, d)).toString(8), "755", d);
  assert.equal(mode(mountPoint).toString(8), "751");
  assert.equal(fsType(mountPoint), "858458f6");
  assert.equal(readFileSync(join(secretsDir, "a"), "utf8"), "value of a");
});

test("temp files a killed copy or swap left beside this manifest's targets are removed; others' are not", (t) => {
  const sb = new Sandbox("stale-temps");
  t.after(() => sb.cleanup());
  const copy = join(sb.root, "etc/app/config.toml");
  mkdirSync(join(sb.root, "etc/app"), { recursive: true });
  const stale = [".config.toml.agenixd-0123456789ab", ".config.toml.agenixd-c0ffee000000"];
  for (const n of stale) writeFileSync(join(sb.root, "etc/app", n), "PARTIAL-PLAINTEXT", { mode: 0o400 });
  writeFileSync(join(sb.root, "etc/app/.unrelated.agenixd-0123456789ab"), "not ours");
  mkdirSync(join(sb.root, "run"), { recursive: true });
  symlinkSync(`${sb.mountPoint}/7`, join(sb.root, "run/.agenix.agenixd-abcdefabcdef"));
  const r = sb.run(sb.manifest([{ name: "config", path: copy, symlink: false }]));
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(join(sb.root, "etc/app")).sort(), [".unrelated.agenixd-0123456789ab", "config.toml"]);
  assert.deepEqual(readdirSync(join(sb.root, "run")).sort(), [".agenix.d.lock", "agenix", "agenix.d"]);
  const info = r.logs.find((l) => l.msg === "removed temporary files an interrupted activation left");
  assert.deepEqual((info?.removed as string[]).sort(), stale);

  // Also beside the path of a secret that fails this time.
  writeFileSync(join(sb.root, "etc/app", stale[0]!), "PARTIAL-PLAINTEXT", { mode: 0o400 });
  const failed = sb.run(sb.manifest([{ name: "config", path: copy, symlink: false, file: "/nonexistent/config.age" }, { name: "other" }]));
  assert.equal(failed.status, 1);
  assert.deepEqual(readdirSync(join(sb.root, "etc/app")).sort(), [".unrelated.agenixd-0123456789ab", "config.toml"]);
});

test("a tmpfs already on the mount point is refused, not hidden under a ramfs: the live generation stays reachable", (t) => {
  const sb = new Sandbox("tmpfs");
  t.after(() => sb.cleanup());
  mkdirSync(sb.mountPoint, { recursive: true });
  assert.equal(spawnSync("mount", ["-t", "tmpfs", "none", sb.mountPoint]).status, 0);
  mkdirSync(join(sb.mountPoint, "1"));
  writeFileSync(join(sb.mountPoint, "1/a"), "previous value");
  symlinkSync(join(sb.mountPoint, "1"), sb.secretsDir);
  const r = sb.run(sb.manifest([{ name: "a", plaintext: "new value" }, { name: "b", file: "/nonexistent.age" }]));
  assert.equal(r.status, 1, r.stderr);
  const fatal = r.logs.find((l) => l.level === "fatal");
  assert.equal(
    fatal?.cause,
    `activation failed: cannot use secretsMountPoint ${sb.mountPoint}: a tmpfs filesystem is mounted there, not a ramfs; ` +
      `agenixd keeps secrets on a ramfs only and will not hide what is on it under a new one: unmount it (umount ${sb.mountPoint}) and activate again`,
  );
  assert.equal(fsType(sb.mountPoint), "1021994", "still the tmpfs, nothing stacked on it");
  assert.equal(readlinkSync(sb.secretsDir), join(sb.mountPoint, "1"));
  assert.equal(sb.read("a"), "previous value");
});

test("files in a mount point that is not a ramfs are refused, not hidden", (t) => {
  const sb = new Sandbox("nonempty-mp");
  t.after(() => sb.cleanup());
  mkdirSync(join(sb.mountPoint, "1"), { recursive: true });
  writeFileSync(join(sb.mountPoint, "1/a"), "on disk");
  const r = sb.run(sb.manifest([{ name: "a" }]));
  assert.equal(r.status, 1);
  assert.match(String(r.logs.find((l) => l.level === "fatal")?.cause), /cannot use secretsMountPoint .*: it is not a ramfs and holds 1, which a ramfs mounted on it would hide; move them away$/);
  assert.notEqual(fsType(sb.mountPoint), "858458f6");
  assert.equal(readFileSync(join(sb.mountPoint, "1/a"), "utf8"), "on disk");
});

test("a previous value that cannot be carried over fails that secret alone; the activation goes on", (t) => {
  const sb = new Sandbox("carry-fails");
  t.after(() => sb.cleanup());
  const big = Buffer.alloc(256 * 1024, 0x61);
  assert.equal(sb.run(sb.manifest([{ name: "big", plaintext: big }, { name: "small", plaintext: "one" }])).status, 0);
  // The big secret's .age file is gone, so its previous value is copied, and the file size limit
  // (SIGXFSZ ignored, so write(2) fails with EFBIG) makes that copy fail.
  const manifest = sb.manifest([{ name: "big", file: "/nonexistent/big.age" }, { name: "small", plaintext: "two" }]);
  const r = spawnSync("sh", ["-c", `trap '' XFSZ; exec prlimit --fsize=65536 -- "$@"`, "sh", process.execPath, ...AGENIXD, "activate", "--manifest", manifest], {
    encoding: "utf8",
    env: launchEnv({ ...process.env, NOTIFY_SOCKET: "" }),
  });
  assert.equal(r.status, 1, r.stderr);
  const logs = parseLogs(r.stderr);
  assert.equal(logs.filter((l) => l.level === "fatal").length, 0, r.stderr);
  const err = errorFor(logs, "big");
  assert.equal(err?.keptPrevious, false);
  assert.match(String(err?.cause), /does not exist; cannot carry over its previous value: .*big is too large$/);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/2`);
  assert.equal(sb.read("small"), "two");
  assert.equal(existsSync(join(sb.secretsDir, "big")), false);
});
