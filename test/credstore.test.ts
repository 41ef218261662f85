// Credentials (issue 15): secrets published in the credstore for systemd's LoadCredential=<name>.
// systemd opens `<credstore dir>/<name>` with a plain open(2) (symlinks followed) as root; here a
// plain read as root stands in for it, and a read as nobody must fail. The boot harness proves it
// with a real DynamicUser= service.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CredentialWriter, credentialId, credentialIdProblem, linkCredstore } from "../src/credstore.js";
import { Dirs } from "../src/secure-fs.js";
import { ROOT_ONLY } from "../src/ramfs.js";
import { AGENIXD, Sandbox, type SecretInput } from "./helpers/sandbox.js";
import { launchEnv } from "../scripts/launch.js";

const STRANGER = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

function mode(path: string): string {
  return (lstatSync(path).mode & 0o7777).toString(8).padStart(4, "0");
}

/** What systemd's LoadCredential=<id> reads: `<dir>/<id>`, symlinks followed, as root. */
function loadCredential(credstore: string, id: string): string {
  return readFileSync(join(credstore, id), "utf8");
}

/** A read as nobody: the plaintext is root's alone. */
function readableByNobody(path: string): boolean {
  return spawnSync("setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", "cat", path], { stdio: "ignore" }).status === 0;
}

test("credential names: a secret's name with / as _, and systemd's rules for a credential name", () => {
  assert.equal(credentialId("tabby-token"), "tabby-token");
  assert.equal(credentialId("db/password"), "db_password");
  assert.equal(credentialId("a/b/c.key"), "a_b_c.key");
  assert.equal(credentialIdProblem("db_password"), undefined);
  assert.equal(credentialIdProblem("with space.txt"), undefined);
  assert.match(credentialIdProblem("a:b")!, /no ":"/);
  assert.match(credentialIdProblem("café")!, /printable ASCII/);
  assert.match(credentialIdProblem("x".repeat(256))!, /at most 255/);
  assert.equal(credentialIdProblem("x".repeat(255)), undefined);
});

function layout() {
  const root = mkdtempSync("/tmp/agenixd-credstore-");
  return { root, credstore: join(root, "run", "credstore"), secretsDir: join(root, "run", "agenix") };
}

test("linkCredstore: makes the directory 0000 (systemd's tmpfiles.d/credstore.conf), one link per credential, and is idempotent", (t) => {
  const l = layout();
  t.after(() => rmSync(l.root, { recursive: true, force: true }));
  const dirs = new Dirs();
  t.after(() => dirs.close());
  const r = linkCredstore(l.credstore, l.secretsDir, ["a", "db/password"], dirs, ROOT_ONLY);
  assert.deepEqual(r, { failed: [], removed: [] });
  assert.equal(mode(l.credstore), "0000");
  assert.equal(readlinkSync(join(l.credstore, "a")), `${l.secretsDir}/credstore/a`);
  assert.equal(readlinkSync(join(l.credstore, "db_password")), `${l.secretsDir}/credstore/db_password`);
  const ino = lstatSync(join(l.credstore, "a")).ino;
  assert.deepEqual(linkCredstore(l.credstore, l.secretsDir, ["a", "db/password"], new Dirs(), ROOT_ONLY), { failed: [], removed: [] });
  assert.equal(lstatSync(join(l.credstore, "a")).ino, ino, "an up-to-date link is left alone");
});

test("linkCredstore: never replaces or removes what agenixd did not make; removes its own stale links", (t) => {
  const l = layout();
  t.after(() => rmSync(l.root, { recursive: true, force: true }));
  mkdirSync(l.credstore, { recursive: true, mode: 0o700 });
  writeFileSync(join(l.credstore, "file"), "someone else's");
  symlinkSync("/etc/hostname", join(l.credstore, "elsewhere"));
  mkdirSync(join(l.credstore, "dir"));
  symlinkSync(`${l.secretsDir}/credstore/gone`, join(l.credstore, "gone"));
  symlinkSync(`${l.secretsDir}/credstore/other-name`, join(l.credstore, "mismatch"));
  symlinkSync(`${l.secretsDir}/old-path`, join(l.credstore, "own-old"));
  writeFileSync(join(l.credstore, "unrelated"), "x");
  const r = linkCredstore(l.credstore, l.secretsDir, ["file", "elsewhere", "dir", "own-old", "new"], new Dirs(), ROOT_ONLY);
  assert.deepEqual(
    r.failed.map((f) => [f.secret, f.cause]),
    [
      ["file", `cannot publish it as credential file: ${l.credstore}/file is a file agenixd did not make; it is left as it is`],
      ["elsewhere", `cannot publish it as credential elsewhere: ${l.credstore}/elsewhere is a symlink to /etc/hostname, which agenixd did not make; it is left as it is`],
      ["dir", `cannot publish it as credential dir: ${l.credstore}/dir is a directory agenixd did not make; it is left as it is`],
    ],
  );
  assert.deepEqual(r.removed, ["gone"]);
  assert.equal(readFileSync(join(l.credstore, "file"), "utf8"), "someone else's");
  assert.equal(readlinkSync(join(l.credstore, "elsewhere")), "/etc/hostname");
  assert.equal(readlinkSync(join(l.credstore, "own-old")), `${l.secretsDir}/credstore/own-old`, "a link of agenixd's into secretsDir is replaced");
  assert.equal(readlinkSync(join(l.credstore, "mismatch")), `${l.secretsDir}/credstore/other-name`, "not exactly agenixd's: kept");
  assert.deepEqual(readdirSync(l.credstore).sort(), ["dir", "elsewhere", "file", "mismatch", "new", "own-old", "unrelated"]);
  assert.equal(mode(l.credstore), "0700", "a credstore that exists keeps its mode");
});

test("linkCredstore: a credstore a user could change, or a symlink planted in its place, is refused for every credential", (t) => {
  const l = layout();
  t.after(() => rmSync(l.root, { recursive: true, force: true }));
  mkdirSync(join(l.root, "run"), { recursive: true });
  const victim = join(l.root, "victim");
  mkdirSync(victim);
  symlinkSync(victim, l.credstore);
  chownSync(join(l.root, "run"), 65534, 65534); // a user owns the directory the link is in: never followed
  const planted = linkCredstore(l.credstore, l.secretsDir, ["a", "b"], new Dirs(), ROOT_ONLY);
  assert.equal(planted.failed.length, 2);
  assert.match(planted.failed[0]!.cause, /^refusing to publish it in .*credstore: .* is owned by uid 65534, not root$/);
  assert.deepEqual(readdirSync(victim), [], "nothing written through the planted link");

  chownSync(join(l.root, "run"), 0, 0);
  rmSync(l.credstore);
  mkdirSync(l.credstore, { mode: 0o700 });
  chownSync(l.credstore, 65534, 65534);
  const foreign = linkCredstore(l.credstore, l.secretsDir, ["a"], new Dirs(), ROOT_ONLY);
  assert.match(foreign.failed[0]!.cause, /is owned by uid 65534, not root/);
  assert.deepEqual(readdirSync(l.credstore), []);

  assert.deepEqual(linkCredstore(join(l.root, "absent"), l.secretsDir, [], new Dirs(), ROOT_ONLY, false), { failed: [], removed: [] }, "pruning a missing one is nothing");
  assert.equal(existsSync(join(l.root, "absent")), false);
});

test("CredentialWriter: credstore/<id> root 0400 in a 0700 directory, created before a byte", (t) => {
  const gen = mkdtempSync("/tmp/agenixd-credgen-");
  t.after(() => rmSync(gen, { recursive: true, force: true }));
  const w = new CredentialWriter(gen, { uid: 0, gid: 0, mode: 0o400 }, { uid: 0, gid: 0, mode: 0o700 });
  w.write("db/password", Buffer.from("pw"));
  w.write("token", Buffer.from([0, 1, 2]));
  assert.equal(mode(join(gen, "credstore")), "0700");
  assert.equal(mode(join(gen, "credstore", "db_password")), "0400");
  assert.deepEqual(readFileSync(join(gen, "credstore", "token")), Buffer.from([0, 1, 2]));
  assert.throws(() => w.write("token", Buffer.from("again")), /already exists/);
});

// ---- End to end, as root on a real ramfs ----

function activate(sb: Sandbox, secrets: SecretInput[], credstore: string | null) {
  return sb.run(sb.manifest(secrets, { credstore }));
}

test("credential secrets are published for LoadCredential=<name>: plaintext on the ramfs, root 0400, links in the credstore", (t) => {
  const sb = new Sandbox("cred");
  t.after(() => sb.cleanup());
  const credstore = join(sb.root, "run", "credstore");
  chmodSync(sb.root, 0o755); // so that a read as nobody is refused by the files' own modes, not by the sandbox's
  const r = activate(sb, [
    { name: "tabby-token", plaintext: "T0K-9f2\n", credential: true },
    { name: "db/password", plaintext: "PW-77c", credential: true, owner: "65534", mode: "0440" },
    { name: "plain", plaintext: "not a credential" },
  ], credstore);
  assert.equal(r.status, 0, r.stderr);
  const gen = join(sb.mountPoint, "1");
  assert.equal(loadCredential(credstore, "tabby-token"), "T0K-9f2\n", "every byte: a credential is the secret as it is");
  assert.equal(loadCredential(credstore, "db_password"), "PW-77c");
  assert.deepEqual(readdirSync(credstore).sort(), ["db_password", "tabby-token"]);
  assert.equal(readlinkSync(join(credstore, "db_password")), `${sb.secretsDir}/credstore/db_password`);
  assert.equal(mode(credstore), "0000");
  assert.equal(mode(join(gen, "credstore")), "0700");
  for (const id of ["tabby-token", "db_password"]) {
    const st = statSync(join(gen, "credstore", id));
    assert.deepEqual([st.uid, st.gid, (st.mode & 0o7777).toString(8)], [0, 0, "400"], `${id}: root's, whatever the secret's owner`);
    assert.equal(readableByNobody(join(credstore, id)), false);
    assert.equal(readableByNobody(join(sb.secretsDir, "credstore", id)), false);
  }
  assert.equal(readableByNobody(join(sb.secretsDir, "db/password")), true, "the secret's own file keeps its owner (nobody) and mode");
  const state = JSON.parse(readFileSync(join(sb.mountPoint, ".status.json"), "utf8"));
  assert.equal(state.credstore, credstore);
  assert.deepEqual(state.secrets.map((s: { credential?: string }) => s.credential), ["tabby-token", "db_password", undefined]);
  assert.doesNotMatch(r.stderr, /T0K-9f2|PW-77c/);
});

test("a credential whose secret failed keeps its previous value; a removed one loses its link; a foreign file is left and reported", (t) => {
  const sb = new Sandbox("cred-keep");
  t.after(() => sb.cleanup());
  const credstore = join(sb.root, "run", "credstore");
  assert.equal(activate(sb, [{ name: "a", plaintext: "a1", credential: true }, { name: "b", plaintext: "b1", credential: true }], credstore).status, 0);

  const failed = activate(sb, [{ name: "a", file: sb.encrypt("a2", [STRANGER]), credential: true }, { name: "b", plaintext: "b2", credential: true }], credstore);
  assert.equal(failed.status, 1);
  assert.equal(loadCredential(credstore, "a"), "a1", "previous value kept");
  assert.equal(loadCredential(credstore, "b"), "b2");
  assert.equal(statSync(join(sb.mountPoint, "2", "credstore", "a")).mode & 0o7777, 0o400);

  writeFileSync(join(credstore, "c"), "another tool's credential", { mode: 0o400 });
  const r = activate(sb, [{ name: "b", plaintext: "b2", credential: true }, { name: "c", plaintext: "c", credential: true }], credstore);
  assert.equal(r.status, 1);
  assert.equal(existsSync(join(credstore, "a")), false, "the link of a credential no longer declared is removed");
  assert.equal(readFileSync(join(credstore, "c"), "utf8"), "another tool's credential");
  const err = r.logs.find((l) => l.msg === "credential not published");
  assert.equal(err?.secret, "c");
  assert.equal(err?.cause, `cannot publish it as credential c: ${credstore}/c is a file agenixd did not make; it is left as it is`);
  assert.equal(sb.read("c"), "c", "the secret itself is installed");
  assert.deepEqual(r.logs.find((l) => l.msg === "removed the links of credentials no longer declared")?.removed, ["a"]);
});

test("turning the credstore off (or moving it) removes agenixd's links from the old one, and only those", (t) => {
  const sb = new Sandbox("cred-off");
  t.after(() => sb.cleanup());
  const credstore = join(sb.root, "run", "credstore");
  assert.equal(activate(sb, [{ name: "a", plaintext: "a", credential: true }], credstore).status, 0);
  writeFileSync(join(credstore, "theirs"), "x");
  const moved = join(sb.root, "etc", "credstore");
  assert.equal(activate(sb, [{ name: "a", plaintext: "a", credential: true }], moved).status, 0);
  assert.deepEqual(readdirSync(credstore), ["theirs"]);
  assert.equal(loadCredential(moved, "a"), "a");
  const off = activate(sb, [{ name: "a", plaintext: "a" }], null);
  assert.equal(off.status, 0, off.stderr);
  assert.deepEqual(readdirSync(moved), []);
  assert.equal(existsSync(join(sb.secretsDir, "credstore")), false);
});

test("--dry-run with credentials writes nothing: no credstore directory, no link", (t) => {
  const sb = new Sandbox("cred-dry");
  t.after(() => sb.cleanup());
  const credstore = join(sb.root, "run", "credstore");
  const r = spawnSync(process.execPath, [...AGENIXD, "activate", "--manifest", sb.manifest([{ name: "a", plaintext: "a", credential: true }], { credstore }), "--dry-run"], {
    encoding: "utf8",
    env: launchEnv({ ...process.env, NOTIFY_SOCKET: "" }),
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(existsSync(credstore) || existsSync(sb.mountPoint), false);
});

test("the users phase carries every other credential over, and publishes the ones it installs", (t) => {
  const sb = new Sandbox("cred-users");
  t.after(() => sb.cleanup());
  const credstore = join(sb.root, "run", "credstore");
  const secrets = (pw: string): SecretInput[] => [{ name: "pw", plaintext: pw, neededForUsers: true, credential: true }, { name: "api", plaintext: "api1", credential: true }];
  assert.equal(activate(sb, secrets("pw1"), credstore).status, 0);
  const users = sb.run(sb.manifest(secrets("pw2"), { credstore }), ["--phase", "users"]);
  assert.equal(users.status, 0, users.stderr);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/2`);
  assert.equal(loadCredential(credstore, "pw"), "pw2");
  assert.equal(loadCredential(credstore, "api"), "api1", "carried over with its secret");
  assert.equal(statSync(join(sb.mountPoint, "2", "credstore", "api")).mode & 0o7777, 0o400);
});
