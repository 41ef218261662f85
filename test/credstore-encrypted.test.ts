// Encrypted credentials (issue 24, item 3; src/credstore-encrypted.ts), with the real systemd-creds:
// secrets re-sealed with `--with-key=host` into `credstore.encrypted/sealed/<id>` of each generation,
// linked from the encrypted credstore, opened here by `systemd-creds decrypt --name=<id>`, which is
// what PID 1 does for LoadCredentialEncrypted=<id> (decrypt_credential_and_warn with the id as the
// name to validate). The host key lives in a tmpfs mounted on /var/lib/systemd in this test's own
// mount namespace, so the machine's credential.secret is never read, made or changed.
import { before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { diffEncryptedCredentials, readIndex, sealCredential } from "../src/credstore-encrypted.js";
import { findSystemdCreds } from "../src/sealed-identity.js";
import { collectStatus } from "../src/status.js";
import { Sandbox, fakeSystemctl, treeHash, type SecretInput } from "./helpers/sandbox.js";
import { installTestPlugin, pluginKey } from "./helpers/age-plugins.js";

const STRANGER = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

/** Whether some ancestor process is in another mount namespace than this one: then `unshare --mount` made ours. */
function inOwnMountNamespace(): boolean {
  const ours = readlinkSync("/proc/self/ns/mnt");
  for (let pid = process.ppid; pid > 1; ) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/mnt`) !== ours) return true;
      pid = Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
    } catch {
      return false;
    }
  }
  return false;
}

before(() => {
  // Never on the machine's own /var/lib/systemd: only inside a mount namespace of our own.
  assert.ok(inOwnMountNamespace(), "run this file inside `unshare --mount --propagation private` (npm test does): it mounts a tmpfs on /var/lib/systemd");
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/var/lib/systemd"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
});

/** What LoadCredentialEncrypted=<id> gives the unit: the file found by name, decrypted with <id> as its name. */
function loadEncrypted(path: string, id: string): { status: number | null; plaintext: string; stderr: string } {
  const r = spawnSync(findSystemdCreds(), ["decrypt", `--name=${id}`, path, "-"], { encoding: "utf8" });
  return { status: r.status, plaintext: r.stdout, stderr: r.stderr };
}

function mode(path: string): string {
  return (lstatSync(path).mode & 0o7777).toString(8).padStart(4, "0");
}

/** Every regular file below `dir`, for a search of plaintext bytes. */
function filesBelow(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesBelow(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

function layout(sb: Sandbox) {
  return { credstore: join(sb.root, "run", "credstore"), encrypted: join(sb.root, "run", "credstore.encrypted") };
}

function activate(sb: Sandbox, secrets: SecretInput[], withKey = "host", args: string[] = []) {
  const l = layout(sb);
  return sb.run(sb.manifest(secrets, { credstore: l.credstore, encryptedCredstore: { dir: l.encrypted, withKey } }), args);
}

const sealedLog = (r: ReturnType<Sandbox["run"]>) => r.logs.find((l) => typeof l.msg === "string" && /^sealed \d+ credentials/.test(l.msg));

test("sealCredential: the plaintext through stdin, a base64 blob that opens only under its own name", async () => {
  const blob = await sealCredential(findSystemdCreds(), "db_password", Buffer.from("s3cret\n"), "host");
  assert.match(blob.toString("latin1"), /^[A-Za-z0-9+/=\n]+$/);
  const opened = spawnSync(findSystemdCreds(), ["decrypt", "--name=db_password", "-", "-"], { input: blob });
  assert.equal(opened.status, 0, opened.stderr.toString());
  assert.equal(opened.stdout.toString(), "s3cret\n");
  const renamed = spawnSync(findSystemdCreds(), ["decrypt", "--name=other", "-", "-"], { input: blob, encoding: "utf8" });
  assert.notEqual(renamed.status, 0);
  assert.match(renamed.stderr, /Embedded credential name 'db_password' does not match/);
  await assert.rejects(sealCredential(findSystemdCreds(), "big", Buffer.alloc(1024 * 1024 + 1), "host"), /^Error: systemd-creds encrypt failed \(exit status 1\): Plaintext too long for credential \(allowed size: 1048576\)\.?$/);
  await assert.rejects(sealCredential("/nonexistent/systemd-creds", "x", Buffer.from("x"), "host"), /^Error: cannot run \/nonexistent\/systemd-creds: ENOENT$/);
});

test("encrypted credentials: a sealed blob linked from the encrypted credstore; no plaintext in the credstore, secretsDir or the generation", (t) => {
  const sb = new Sandbox("credenc");
  t.after(() => sb.cleanup());
  const l = layout(sb);
  const r = activate(sb, [
    { name: "tabby-token", plaintext: "T0K-9f2-sealed\n", credential: true },
    { name: "db/password", plaintext: "PW-77c-sealed", credential: true, owner: "65534" },
    { name: "plain", plaintext: "an ordinary secret" },
  ]);
  assert.equal(r.status, 0, r.stderr);
  const gen = join(sb.mountPoint, "1");
  assert.deepEqual(readdirSync(l.encrypted).sort(), ["db_password", "tabby-token"]);
  assert.equal(readlinkSync(join(l.encrypted, "db_password")), `${sb.secretsDir}/credstore.encrypted/sealed/db_password`);
  assert.equal(mode(l.encrypted), "0000", "as systemd's tmpfiles.d/credstore.conf makes it");
  assert.deepEqual(loadEncrypted(join(l.encrypted, "tabby-token"), "tabby-token"), { status: 0, plaintext: "T0K-9f2-sealed\n", stderr: "" });
  assert.equal(loadEncrypted(join(l.encrypted, "db_password"), "db_password").plaintext, "PW-77c-sealed");
  for (const f of ["sealed/tabby-token", "sealed/db_password", "index.json"]) {
    const st = statSync(join(gen, "credstore.encrypted", f));
    assert.deepEqual([st.uid, st.gid, (st.mode & 0o7777).toString(8)], [0, 0, "400"], f);
  }
  assert.equal(mode(join(gen, "credstore.encrypted")), "0700");
  // No plaintext of a credential anywhere but in memory: not in the credstore, not as the secret's file, not in any file of the ramfs.
  assert.deepEqual(existsSync(l.credstore) ? readdirSync(l.credstore) : [], []);
  assert.equal(existsSync(join(sb.secretsDir, "tabby-token")), false);
  assert.equal(existsSync(join(sb.secretsDir, "db/password")), false);
  assert.equal(existsSync(join(gen, "credstore")), false);
  for (const f of filesBelow(sb.mountPoint)) {
    const bytes = readFileSync(f);
    assert.equal(bytes.includes("T0K-9f2-sealed") || bytes.includes("PW-77c-sealed"), false, `${f} holds a plaintext`);
  }
  assert.equal(sb.read("plain"), "an ordinary secret", "a secret that is not a credential is installed as always");
  assert.deepEqual(sealedLog(r)?.sealed, ["tabby-token", "db/password"]);
  assert.doesNotMatch(r.stderr, /T0K-9f2|PW-77c/);
  const state = JSON.parse(readFileSync(join(sb.mountPoint, ".status.json"), "utf8"));
  assert.equal(state.encryptedCredstore, l.encrypted);
  // agenixd status: healthy, each sealed credential shown at its link with its blob's owner and mode, not as a missing file.
  const status = collectStatus(sb.secretsDir, sb.mountPoint);
  assert.equal(status.health, "healthy");
  assert.deepEqual(status.secrets.map((s) => [s.name, s.path, s.mode, s.missing]), [
    ["tabby-token", join(l.encrypted, "tabby-token"), "0400", false],
    ["db/password", join(l.encrypted, "db_password"), "0400", false],
    ["plain", join(sb.secretsDir, "plain"), "0400", false],
  ]);
});

test("change awareness: an unchanged plaintext reuses the live blob (no systemd-creds run, no restart); a changed one is re-sealed and restarts its units", (t) => {
  const sb = new Sandbox("credenc-change");
  const calls = fakeSystemctl();
  t.after(() => {
    sb.cleanup();
    delete process.env.AGENIXD_SYSTEMCTL;
  });
  const secrets = (a: string, b: string): SecretInput[] => [
    { name: "a", plaintext: a, credential: true, restartUnits: ["a-consumer.service"] },
    { name: "b", plaintext: b, credential: true, restartUnits: ["b-consumer.service"] },
  ];
  assert.equal(activate(sb, secrets("a1", "b1")).status, 0);
  // One generation is kept: each blob is read from the live one before the next run.
  const blob = (id: string) => readFileSync(join(sb.secretsDir, "credstore.encrypted", "sealed", id));
  const first = { a: blob("a"), b: blob("b") };
  calls();

  const same = activate(sb, secrets("a1", "b1"));
  assert.equal(same.status, 0, same.stderr);
  assert.deepEqual(sealedLog(same)?.sealed, []);
  assert.equal(sealedLog(same)?.reused, 2);
  assert.deepEqual(blob("a"), first.a, "the same bytes: copied, not re-encrypted (encryption is randomised)");
  assert.deepEqual(calls(), [], "nothing changed: nothing restarted");

  const changed = activate(sb, secrets("a2", "b1"));
  assert.equal(changed.status, 0, changed.stderr);
  assert.deepEqual(sealedLog(changed)?.sealed, ["a"]);
  assert.notDeepEqual(blob("a"), first.a);
  assert.deepEqual(blob("b"), first.b);
  assert.equal(loadEncrypted(join(layout(sb).encrypted, "a"), "a").plaintext, "a2");
  assert.deepEqual(calls(), ["--no-block try-restart -- a-consumer.service"]);
  assert.ok(changed.logs.some((l) => l.msg === "modifying secret a: content"), JSON.stringify(changed.logs.map((l) => l.msg)));
});

test("diffEncryptedCredentials compares digests, not blobs; another key type is re-sealed, and its failure keeps the blob", (t) => {
  const sb = new Sandbox("credenc-rekey");
  t.after(() => sb.cleanup());
  assert.equal(activate(sb, [{ name: "a", plaintext: "same", credential: true }]).status, 0);
  const prev = join(sb.mountPoint, "1");
  // The index of generation 1 knows "a" with key type host.
  assert.deepEqual([...readIndex(prev).entries.keys()], ["a"]);
  const d = diffEncryptedCredentials(prev, [{ name: "a", plaintext: Buffer.from("same") }, { name: "x/y", plaintext: Buffer.from("n") }]);
  assert.deepEqual(d, { changes: [{ kind: "added", name: "x/y" }], unchanged: ["a"] });
  assert.deepEqual(diffEncryptedCredentials(prev, [{ name: "a", plaintext: Buffer.from("other") }]).changes, [{ kind: "modified", name: "a", aspects: ["content"] }]);
  // `auto` is another key type than `host`: re-sealed. Here (/var/lib/systemd a tmpfs, no TPM in this namespace) systemd's auto finds no key: the failure is systemd-creds' own line, and the host-sealed blob stays.
  const auto = activate(sb, [{ name: "a", plaintext: "same", credential: true }], "auto");
  assert.equal(auto.status, 1);
  const err = auto.logs.find((l) => l.msg === "secret not installed" && l.secret === "a");
  assert.match(String(err?.cause), /^cannot seal it as encrypted credential a: systemd-creds encrypt failed \(exit status 1\): TPM2 not available and host key located on temporary file system, no encryption key available\.$/);
  assert.equal(err?.keptPrevious, true);
  assert.equal(loadEncrypted(join(layout(sb).encrypted, "a"), "a").plaintext, "same");
});

test("failure isolation: a secret that does not decrypt or does not seal keeps its previous blob, with a line naming it; the others go on", (t) => {
  const sb = new Sandbox("credenc-fail");
  t.after(() => sb.cleanup());
  const l = layout(sb);
  assert.equal(activate(sb, [
    { name: "big", plaintext: "small at first", credential: true },
    { name: "stranger", plaintext: "s1", credential: true },
    { name: "ok", plaintext: "ok1", credential: true },
  ]).status, 0);
  const r = activate(sb, [
    { name: "big", plaintext: Buffer.alloc(1024 * 1024 + 1, 0x41), credential: true },
    { name: "stranger", file: sb.encrypt("s2", [STRANGER]), credential: true },
    { name: "ok", plaintext: "ok2", credential: true },
    { name: "new-bad", plaintext: Buffer.alloc(1024 * 1024 + 1, 0x42), credential: true },
  ]);
  assert.equal(r.status, 1);
  const failures = Object.fromEntries(r.logs.filter((x) => x.msg === "secret not installed").map((x) => [x.secret, { cause: x.cause, kept: x.keptPrevious }]));
  assert.deepEqual(failures.big, { cause: "cannot seal it as encrypted credential big: systemd-creds encrypt failed (exit status 1): Plaintext too long for credential (allowed size: 1048576).", kept: true });
  assert.equal(failures.stranger?.kept, true);
  assert.match(String(failures.stranger?.cause), /no identity matches any recipient/);
  assert.deepEqual(failures["new-bad"], { cause: "cannot seal it as encrypted credential new-bad: systemd-creds encrypt failed (exit status 1): Plaintext too long for credential (allowed size: 1048576).", kept: false });
  assert.equal(loadEncrypted(join(l.encrypted, "big"), "big").plaintext, "small at first");
  assert.equal(loadEncrypted(join(l.encrypted, "stranger"), "stranger").plaintext, "s1");
  assert.equal(loadEncrypted(join(l.encrypted, "ok"), "ok").plaintext, "ok2");
  assert.equal(existsSync(join(sb.mountPoint, "2", "credstore.encrypted", "sealed", "new-bad")), false);
  // The kept blob is still what the index says: the next run with the small value again reuses it.
  const back = activate(sb, [
    { name: "big", plaintext: "small at first", credential: true },
    { name: "stranger", plaintext: "s1", credential: true },
    { name: "ok", plaintext: "ok2", credential: true },
  ]);
  assert.equal(back.status, 0, back.stderr);
  assert.deepEqual(sealedLog(back)?.sealed, []);
});

test("turning encryption on removes the plaintext credentials' links; off again, the sealed links go and plaintext ones come back", (t) => {
  const sb = new Sandbox("credenc-switch");
  t.after(() => sb.cleanup());
  const l = layout(sb);
  const secrets: SecretInput[] = [{ name: "a", plaintext: "a-value", credential: true }];
  assert.equal(sb.run(sb.manifest(secrets, { credstore: l.credstore })).status, 0);
  assert.deepEqual(readdirSync(l.credstore), ["a"]);
  const on = activate(sb, secrets);
  assert.equal(on.status, 0, on.stderr);
  assert.deepEqual(readdirSync(l.credstore), [], "no plaintext credential once it is sealed");
  assert.deepEqual(readdirSync(l.encrypted), ["a"]);
  assert.equal(existsSync(join(sb.secretsDir, "a")), false);
  const off = sb.run(sb.manifest(secrets, { credstore: l.credstore }));
  assert.equal(off.status, 0, off.stderr);
  assert.deepEqual(readdirSync(l.encrypted), []);
  assert.equal(readFileSync(join(l.credstore, "a"), "utf8"), "a-value");
});

test("--dry-run with encrypted credentials runs no systemd-creds and writes nothing", (t) => {
  const sb = new Sandbox("credenc-dry");
  t.after(() => sb.cleanup());
  const before = treeHash("/var/lib/systemd");
  const r = activate(sb, [{ name: "a", plaintext: "a", credential: true }], "host", ["--dry-run"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(existsSync(layout(sb).encrypted) || existsSync(sb.mountPoint), false);
  assert.equal(treeHash("/var/lib/systemd"), before);
});

test("a sealed credential that only a plugin behind a missing socket opens is deferred, not failed (docs/plugins.md)", (t) => {
  const sb = new Sandbox("sealed-deferred");
  t.after(() => sb.cleanup());
  const bin = join(sb.root, "plugin-bin");
  installTestPlugin(bin, "card", "normal");
  const card = pluginKey(sb.root, "card");
  const l = layout(sb);
  const manifest = sb.manifest(
    [{ name: "tok", file: sb.encrypt("from the card", [card.recipient]), credential: true }, { name: "plain", plaintext: "p", credential: true }],
    {
      credstore: l.credstore, encryptedCredstore: { dir: l.encrypted, withKey: "host" }, identityPaths: [card.identityPath, sb.hostKey.privatePath], pluginDirs: [bin],
      pluginSockets: [{ plugin: "card", socket: join(sb.root, "absent.comm"), unit: "pcscd.socket" }],
    },
  );
  const r = sb.run(manifest);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.logs.some((e) => e.msg === "secret deferred until pcscd.socket" && e.secret === "tok"), r.stderr);
  assert.equal(r.logs.some((e) => e.level === 50), false, r.stderr);
  assert.equal(loadEncrypted(join(l.encrypted, "plain"), "plain").plaintext, "p");
  assert.equal(existsSync(join(l.encrypted, "tok")), false);
  assert.equal(readFileSync(join(sb.mountPoint, ".deferred"), "utf8"), "pcscd.socket\n");
});
