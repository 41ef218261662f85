// Root's reads get the care its writes got (issue 23): a template file, a secret's `.age` file
// and an identity are read only when they and every directory above them are root's alone, and
// a template is bounded like an `.age` file. A real unprivileged user (useradd) plays the attacker.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chownSync, copyFileSync, existsSync, lchownSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Sandbox, placeholder, withUser } from "./helpers/sandbox.js";

function errorFor(logs: Array<Record<string, unknown>>, key: "secret" | "template", name: string): Record<string, unknown> | undefined {
  return logs.find((l) => l.level === "error" && l[key] === name && typeof l.cause === "string");
}

test("a template file in a directory another user owns is not read: the template fails alone and keeps its previous rendering", (t) => {
  const user = withUser("agxtest-tpl");
  const sb = new Sandbox("reads-tpl");
  t.after(() => {
    sb.cleanup();
    user.remove();
  });
  const root = { name: "root-pw", plaintext: "root's password" };
  const first = sb.run(sb.manifest([root], {}, [{ name: "app.conf", content: "ok\n" }]));
  assert.equal(first.status, 0, first.stderr);
  assert.equal(sb.read("rendered/app.conf"), "ok\n");

  // The user's own directory, holding a template that asks for root's secret (placeholders are public).
  const home = join(sb.root, "home/u");
  mkdirSync(home, { recursive: true });
  chownSync(home, user.uid, user.gid);
  const file = join(home, "app.conf");
  writeFileSync(file, `stolen = ${placeholder("root-pw")}\n`);
  const r = sb.run(sb.manifest([root], {}, [{ name: "app.conf", file, owner: "agxtest-tpl" }, { name: "other.conf", content: "other\n" }]));
  assert.equal(r.status, 1, r.stderr);
  const error = errorFor(r.logs, "template", "app.conf");
  assert.equal(error?.cause, `refusing to read the template: ${home} is owned by uid ${user.uid}, not root`);
  assert.equal(error?.keptPrevious, true);
  assert.equal(sb.read("rendered/app.conf"), "ok\n", "the previous rendering stays");
  assert.equal(sb.read("rendered/other.conf"), "other\n");
  assert.equal(sb.read("root-pw"), "root's password");
});

test("a template file the user owns, or a symlink the user owns, in root's directory is not read; root's own symlink is followed", (t) => {
  const user = withUser("agxtest-tpl2");
  const sb = new Sandbox("reads-tpl2");
  t.after(() => {
    sb.cleanup();
    user.remove();
  });
  const dir = join(sb.root, "etc/app");
  mkdirSync(dir, { recursive: true });
  const owned = join(dir, "owned.conf");
  writeFileSync(owned, `x = ${placeholder("root-pw")}\n`);
  chownSync(owned, user.uid, user.gid);
  // A key only root may read, that a user's symlink would hand over.
  const hostKey = join(sb.root, "etc/ssh/fake_host_key");
  writeFileSync(hostKey, "PRIVATE KEY BYTES\n", { mode: 0o600 });
  const link = join(dir, "link.conf");
  symlinkSync(hostKey, link);
  lchownSync(link, user.uid, user.gid);
  const rootLink = join(dir, "root-link.conf");
  const target = sb.storeText(`y = ${placeholder("root-pw")}\n`);
  symlinkSync(target, rootLink);
  const r = sb.run(sb.manifest([{ name: "root-pw", plaintext: "pw" }], {}, [
    { name: "owned.conf", file: owned, owner: "agxtest-tpl2" },
    { name: "link.conf", file: link, owner: "agxtest-tpl2" },
    { name: "root-link.conf", file: rootLink },
  ]));
  assert.equal(r.status, 1, r.stderr);
  assert.equal(errorFor(r.logs, "template", "owned.conf")?.cause, `refusing to read the template: ${owned} is owned by uid ${user.uid}, not root`);
  assert.equal(
    errorFor(r.logs, "template", "link.conf")?.cause,
    `refusing to read the template: ${link} is a symlink owned by uid ${user.uid} (not followed: only root's own, in a directory only root can change, is)`,
  );
  assert.ok(!existsSync(join(sb.secretsDir, "rendered/owned.conf")));
  assert.ok(!existsSync(join(sb.secretsDir, "rendered/link.conf")));
  assert.ok(!r.stderr.includes("PRIVATE KEY BYTES"));
  assert.equal(sb.read("rendered/root-link.conf"), "y = pw\n");
});

test("ciphertext substitution: a user's own .age file replaced by another secret's ciphertext is not decrypted", (t) => {
  const user = withUser("agxtest-age");
  const sb = new Sandbox("reads-age");
  t.after(() => {
    sb.cleanup();
    user.remove();
  });
  const rootFile = sb.encrypt("root's database password");
  // The user's secret lives in the user's own directory (a `file` given as a string)...
  const varLib = join(sb.root, "var/lib/u");
  mkdirSync(varLib, { recursive: true });
  chownSync(varLib, user.uid, user.gid);
  const inUserDir = join(varLib, "mine.age");
  // ...or is a file root made and gave to the user.
  const given = join(sb.root, "etc/given.age");
  mkdirSync(join(sb.root, "etc"), { recursive: true });
  // What the user does: copy root's world-readable store ciphertext over their own.
  copyFileSync(rootFile, inUserDir);
  chownSync(inUserDir, user.uid, user.gid);
  copyFileSync(rootFile, given);
  chownSync(given, user.uid, user.gid);
  const r = sb.run(sb.manifest([
    { name: "root-db", file: rootFile },
    { name: "mine", file: inUserDir, owner: "agxtest-age" },
    { name: "given", file: given, owner: "agxtest-age" },
  ]));
  assert.equal(r.status, 1, r.stderr);
  assert.equal(errorFor(r.logs, "secret", "mine")?.cause, `refusing to read the encrypted file: ${varLib} is owned by uid ${user.uid}, not root`);
  assert.equal(errorFor(r.logs, "secret", "given")?.cause, `refusing to read the encrypted file: ${given} is owned by uid ${user.uid}, not root`);
  assert.ok(!existsSync(join(sb.secretsDir, "mine")));
  assert.ok(!existsSync(join(sb.secretsDir, "given")));
  assert.equal(sb.read("root-db"), "root's database password");
});

test("an identity another user owns, or below a directory another user owns, is skipped with a warning", (t) => {
  const user = withUser("agxtest-id");
  const sb = new Sandbox("reads-id");
  t.after(() => {
    sb.cleanup();
    user.remove();
  });
  const persist = join(sb.root, "persist");
  mkdirSync(persist);
  chownSync(persist, user.uid, user.gid);
  const planted = join(persist, "key");
  copyFileSync(sb.hostKey.privatePath, planted);
  const r = sb.run(sb.manifest([{ name: "a" }], { identityPaths: [planted, sb.hostKey.privatePath] }));
  assert.equal(r.status, 0, r.stderr);
  const warning = r.logs.find((l) => l.level === "warn" && l.identity === planted);
  assert.equal(warning?.cause, `not used: ${persist} is owned by uid ${user.uid}, not root`);
  assert.equal(warning?.msg, "identity skipped");
  assert.equal(sb.read("a"), "value of a");
});

test("template bounds: a FIFO, /dev/zero, a huge file and a huge rendering each fail alone; the rest is installed", { timeout: 60_000 }, (t) => {
  const sb = new Sandbox("reads-bounds");
  t.after(() => sb.cleanup());
  const big = Buffer.alloc(2 * 1024 * 1024, 0x61);
  const secrets = [{ name: "big", plaintext: big }, { name: "small", plaintext: "s" }];
  const good = { name: "good.conf", content: `v = ${placeholder("small")}\n` };
  const first = sb.run(sb.manifest(secrets, {}, [good, { name: "huge-render.conf", content: "was fine\n" }]));
  assert.equal(first.status, 0, first.stderr);

  const fifo = join(sb.store, "fifo");
  assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
  const sparse = join(sb.store, "sparse");
  assert.equal(spawnSync("truncate", ["-s", "17M", sparse]).status, 0);
  const start = Date.now();
  const r = sb.run(sb.manifest(secrets, {}, [
    good,
    { name: "fifo.conf", file: fifo },
    { name: "zero.conf", file: "/dev/zero" },
    { name: "sparse.conf", file: sparse },
    // 40 × 2 MiB = 80 MiB rendered: over the 64 MiB limit (2,100 × 2 MiB threw a RangeError before).
    { name: "huge-render.conf", content: `${placeholder("big")}\n`.repeat(40) },
  ]));
  assert.ok(Date.now() - start < 30_000, "nothing blocked or read without end");
  assert.equal(r.status, 1, r.stderr);
  const cause = (name: string) => errorFor(r.logs, "template", name)?.cause;
  assert.equal(cause("fifo.conf"), "template file is not a regular file (a FIFO)");
  assert.equal(cause("zero.conf"), "template file is not a regular file (a character device)");
  assert.equal(cause("sparse.conf"), "template file is larger than 16 MiB (limit 16 MiB)");
  assert.equal(cause("huge-render.conf"), "the rendered file would be larger than 64 MiB (limit 64 MiB)");
  assert.equal(errorFor(r.logs, "template", "huge-render.conf")?.keptPrevious, true);
  assert.equal(sb.read("rendered/huge-render.conf"), "was fine\n", "its previous rendering stays");
  assert.equal(sb.read("rendered/good.conf"), "v = s\n");
  assert.equal(readFileSync(join(sb.secretsDir, "big")).length, big.length);
});

test("what a second user learns with stat (docs/hardening.md, as agenix's layout): a secret's size and inode, never its bytes", (t) => {
  const user = withUser("agxtest-stat");
  const sb = new Sandbox("reads-stat");
  t.after(() => {
    sb.cleanup();
    user.remove();
  });
  const r = sb.run(sb.manifest([{ name: "root-pw", plaintext: "twelve bytes" }], {}, [{ name: "t.conf", content: `pw = ${placeholder("root-pw")}\n` }]));
  assert.equal(r.status, 0, r.stderr);
  // The sandbox root is root's 0700 (mkdtemp): open it for the traversal /run gives on a host.
  spawnSync("chmod", ["0755", sb.root, join(sb.root, "run")]);
  const asUser = (...args: string[]) => spawnSync("setpriv", [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", ...args], { encoding: "utf8" });
  const stat = asUser("stat", "-L", "-c", "%s %a %U", join(sb.secretsDir, "root-pw"), join(sb.secretsDir, "rendered/t.conf"));
  assert.equal(stat.status, 0, stat.stderr);
  // "pw = " + 12 bytes + "\n": the template text is public, so the secret's length follows.
  assert.equal(stat.stdout, "12 400 root\n18 400 root\n");
  const cat = asUser("cat", join(sb.secretsDir, "root-pw"));
  assert.notEqual(cat.status, 0);
  assert.ok(!cat.stdout.includes("twelve"));
});
