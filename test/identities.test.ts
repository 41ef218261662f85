import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { generateHybridIdentity } from "age-encryption";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { decryptAge } from "../src/age/index.js";
import { decodeBech32 } from "../src/age/bech32.js";
import { type IdentityWarning, loadIdentities } from "../src/identities.js";
import { ageEncrypt, generateAgeKey, generatePassphraseSshKey, generateSshKey } from "./helpers/age-cli.js";
import { stringsContaining } from "./helpers/string-probe.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "agenixd-identities-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function loadOne(path: string) {
  const warnings: IdentityWarning[] = [];
  const identities = await loadIdentities([path], (w) => warnings.push(w));
  return { identities, warnings };
}

async function assertSkipped(path: string, reason: RegExp): Promise<void> {
  const { identities, warnings } = await loadOne(path);
  assert.equal(identities.length, 0);
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.path, path);
  assert.match(warnings[0]!.reason, reason);
}

test("a missing file is skipped with a warning", async () => {
  await assertSkipped(join(dir, "does-not-exist"), /^file does not exist$/);
});

test("an empty file is skipped with a warning", async () => {
  const path = join(dir, "empty");
  writeFileSync(path, "");
  await assertSkipped(path, /^empty file$/);
});

test("unreadable paths are skipped: a directory, a path through a regular file, a FIFO", async () => {
  // chmod 000 does not stop root, so use paths that cannot be read by anyone.
  const directory = join(dir, "a-directory");
  mkdirSync(directory);
  await assertSkipped(directory, /directory/);

  const regular = join(dir, "regular");
  writeFileSync(regular, "x");
  await assertSkipped(join(regular, "key"), /^unreadable: a parent of the path is not a directory$/);

  // A FIFO would block a naive read forever; it must be refused without opening it.
  const fifo = join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  await assertSkipped(fifo, /^is not a regular file$/);
});

test("passphrase-protected SSH keys are skipped with a clear warning", async () => {
  for (const type of ["ed25519", "rsa"] as const) {
    const key = generatePassphraseSshKey(dir, type, "correct horse battery");
    await assertSkipped(key.privatePath, /^passphrase-protected; agenixd cannot use it$/);
  }
});

test("garbage, public keys and half-valid age files are skipped without quoting key material", async () => {
  const garbage = join(dir, "garbage");
  writeFileSync(garbage, "this is not a key\n");
  await assertSkipped(garbage, /^line 1 is not an age identity or SSH private key$/);

  const ssh = generateSshKey(dir, "ed25519", 0, "for_pub");
  await assertSkipped(`${ssh.privatePath}.pub`, /^line 1 is not an age identity/);

  const brokenPem = join(dir, "broken-pem");
  writeFileSync(brokenPem, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAnotbase64!!\n-----END OPENSSH PRIVATE KEY-----\n");
  await assertSkipped(brokenPem, /^cannot parse as an SSH private key$/);

  const good = readFileSync(generateAgeKey(dir, "good.key").privatePath, "utf8");
  const goodLine = good.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  const halfValid = join(dir, "half-valid");
  // A corrupted checksum on line 3: the whole file is rejected, as Go age does.
  const corrupted = goodLine.slice(0, -1) + (goodLine.endsWith("Q") ? "P" : "Q");
  writeFileSync(halfValid, `${goodLine}\n\n${corrupted}\n`);
  const { warnings } = await loadOne(halfValid);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.reason, /^line 3: invalid Bech32 checksum$/);
  assert.ok(!warnings[0]!.reason.includes("AGE-SECRET-KEY"));

  const onlyComments = join(dir, "only-comments");
  writeFileSync(onlyComments, "# nothing here\n\n");
  await assertSkipped(onlyComments, /^contains no identities$/);
});

test("an age identity file may hold several keys, comments, blank lines and CRLF", async () => {
  const a = generateAgeKey(dir, "a.key");
  const b = generateAgeKey(dir, "b.key");
  const keyLine = (path: string) => readFileSync(path, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  const path = join(dir, "several.key");
  writeFileSync(path, `# first\r\n${keyLine(a.privatePath)}\r\n\r\n   # second, indented comment\n${keyLine(b.privatePath)}\n`, { mode: 0o600 });
  const { identities, warnings } = await loadOne(path);
  assert.deepEqual(warnings, []);
  assert.deepEqual(identities.map((i) => [i.type, i.source]), [["X25519", path], ["X25519", path]]);
  // Each loaded key is the right one: it alone opens the file for its recipient.
  assert.equal((await decryptAge(ageEncrypt("for a", [a.recipient]), [identities[0]!])).toString(), "for a");
  assert.equal((await decryptAge(ageEncrypt("for b", [b.recipient]), [identities[1]!])).toString(), "for b");
  await assert.rejects(decryptAge(ageEncrypt("for b", [b.recipient]), [identities[0]!]), /no identity matches/);
});

test("SSH host keys (OpenSSH ed25519, OpenSSH RSA, PEM RSA) load in path order, skipping bad ones", async () => {
  const ed = generateSshKey(dir, "ed25519", 0, "host_ed25519");
  const rsa = generateSshKey(dir, "rsa", 2048, "host_rsa");
  const pemPath = join(dir, "host_rsa_pem");
  execFileSync("ssh-keygen", ["-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-C", "", "-f", pemPath]);
  assert.match(readFileSync(pemPath, "utf8"), /^-----BEGIN RSA PRIVATE KEY-----/);
  const pemRecipient = readFileSync(`${pemPath}.pub`, "utf8").trim();

  const warnings: IdentityWarning[] = [];
  const missing = join(dir, "missing_host_key");
  const identities = await loadIdentities([missing, ed.privatePath, rsa.privatePath, pemPath], (w) => warnings.push(w));
  assert.deepEqual(warnings.map((w) => w.path), [missing]);
  assert.deepEqual(identities.map((i) => [i.type, i.source]), [
    ["ssh-ed25519", ed.privatePath],
    ["ssh-rsa", rsa.privatePath],
    ["ssh-rsa", pemPath],
  ]);
  const file = ageEncrypt("host secret", [pemRecipient]);
  assert.equal((await decryptAge(file, identities)).toString(), "host secret");
});

test("unsupported SSH key types are skipped with a warning", async () => {
  const path = join(dir, "ecdsa_key");
  execFileSync("ssh-keygen", ["-q", "-t", "ecdsa", "-N", "", "-C", "", "-f", path]);
  await assertSkipped(path, /^unsupported SSH key type "ecdsa"/);
});

// Spawns a fresh Node that records which heavy packages get resolved while loading identities.
function packagesLoadedFor(paths: string[]): string[] {
  const hooks = `import { writeSync } from "node:fs";
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  const m = /node_modules\\/(sshpk|age-encryption)\\//.exec(r.url);
  if (m) writeSync(1, "LOADED " + m[1] + "\\n");
  return r;
}`;
  const script = join(dir, "probe.mjs");
  writeFileSync(script, `import { register } from "node:module";
register("data:text/javascript," + encodeURIComponent(${JSON.stringify(hooks)}));
const { loadIdentities } = await import(${JSON.stringify(new URL("../src/identities.js", import.meta.url).href)});
const ids = await loadIdentities(process.argv.slice(2), (w) => { throw new Error(w.reason); });
console.log("TYPES " + ids.map((i) => i.type).join(","));
`);
  const out = execFileSync(process.execPath, [script, ...paths], { encoding: "utf8" });
  return [...new Set(out.split("\n").filter((l) => l.length > 0))].sort();
}

test("sshpk and age-encryption are loaded only when a key needs them", async () => {
  const age = generateAgeKey(dir, "lazy-age.key");
  const ssh = generateSshKey(dir, "ed25519", 0, "lazy_ed25519");
  const pqPath = join(dir, "lazy-pq.key");
  writeFileSync(pqPath, `${await generateHybridIdentity()}\n`, { mode: 0o600 });
  assert.deepEqual(packagesLoadedFor([age.privatePath]), ["TYPES X25519"]);
  assert.deepEqual(packagesLoadedFor([ssh.privatePath]), ["LOADED sshpk", "TYPES ssh-ed25519"]);
  assert.deepEqual(packagesLoadedFor([pqPath, age.privatePath]), ["LOADED age-encryption", "TYPES mlkem768x25519,X25519"]);
});

test("an identity file others may read is used with one warning; one another user owns or may write is skipped", async () => {
  const ssh = generateSshKey(dir, "ed25519", 0, "exposed_ed25519");
  const age = generateAgeKey(dir, "exposed-age.key");
  chownSync(ssh.privatePath, 0, 0);
  const cases: Array<[string, () => void, string, boolean]> = [
    ["ssh key 0644", () => chmodSync(ssh.privatePath, 0o644), "readable by group and others (mode 0644)", false],
    ["ssh key 0640", () => chmodSync(ssh.privatePath, 0o640), "readable by group (mode 0640)", false],
    // Group root may write, as it may write the directories on the way.
    ["ssh key 0660, group root", () => chmodSync(ssh.privatePath, 0o660), "readable by group (mode 0660), writable by group (mode 0660)", false],
    ["ssh key 0602", () => chmodSync(ssh.privatePath, 0o602), "not used: is writable by every user (mode 0602)", true],
    ["ssh key 0666", () => chmodSync(ssh.privatePath, 0o666), "not used: is writable by every user (mode 0666)", true],
    ["ssh key 0620, group nogroup", () => { chmodSync(ssh.privatePath, 0o620); chownSync(ssh.privatePath, 0, 65534); }, "not used: is writable by group 65534 (mode 0620), not only by root", true],
    ["ssh key owned by nobody", () => { chmodSync(ssh.privatePath, 0o600); chownSync(ssh.privatePath, 65534, 0); }, "not used: is owned by uid 65534, not root", true],
  ];
  for (const [what, setUp, reason, skipped] of cases) {
    setUp();
    const { identities, warnings } = await loadOne(ssh.privatePath);
    assert.deepEqual(identities.map((i) => i.type), skipped ? [] : ["ssh-ed25519"], what);
    assert.deepEqual(warnings, [{ path: ssh.privatePath, reason, skipped }], what);
  }
  chmodSync(age.privatePath, 0o644);
  const { identities, warnings } = await loadOne(age.privatePath);
  assert.deepEqual(identities.map((i) => i.type), ["X25519"]);
  assert.deepEqual(warnings, [{ path: age.privatePath, reason: "readable by group and others (mode 0644)", skipped: false }]);
  // Root's own 0600 and 0400 files get no warning; nor does a key whose warning would be a skip.
  chmodSync(age.privatePath, 0o400);
  assert.deepEqual((await loadOne(age.privatePath)).warnings, []);
  const garbage = join(dir, "exposed-garbage");
  writeFileSync(garbage, "not a key\n", { mode: 0o644 });
  assert.deepEqual((await loadOne(garbage)).warnings.map((w) => w.skipped), [true]);
});

test("an age identity becomes a key without ever being a JS string", async () => {
  const key = generateAgeKey(dir, "no-strings.key");
  const line = readFileSync(key.privatePath, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  const scalar = decodeBech32(Buffer.from(line, "latin1")).bytes;
  // The key's data characters, and the scalar in every encoding a careless change would produce.
  const needles = [line.slice(16, 40), line.slice(16, 40).toLowerCase(), scalar.toString("hex").slice(0, 24), scalar.toString("base64").slice(0, 24), scalar.toString("base64url").slice(0, 24)];
  let loaded: Awaited<ReturnType<typeof loadIdentities>> = [];
  const found = await stringsContaining(needles, async () => {
    loaded = await loadIdentities([key.privatePath], (w) => assert.fail(w.reason));
  });
  assert.deepEqual(found, []);
  assert.equal((await decryptAge(ageEncrypt("still works", [key.recipient]), loaded)).toString(), "still works");
  // The probe sees what it must: the file read as a string would be caught.
  assert.equal((await stringsContaining(needles, async () => readFileSync(key.privatePath).toString("latin1"))).length, 1);
});
