// The build-time recipient check (src/recipient-check.ts, `agenixd check`): over agenix's own
// example .age files and over files Go age writes with several recipients, with public keys only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RecipientError, checkFile, checkHeader, parseRecipient, summarize } from "../src/recipient-check.js";
import { parseCommand } from "../src/cli.js";
import { ageEncrypt, generateAgeKey, generateSshKey } from "./helpers/age-cli.js";
import { AGENIXD } from "./helpers/sandbox.js";

const example = (f: string) => fileURLToPath(new URL(`../../test/fixtures/agenix-example/${f}`, import.meta.url));
const USER1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL0idNvgGiucWgup/mP78zyC23uFjYq0evcWdjGQUaBH";
const SYSTEM1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPJDyIr/FSz1cJdcoW69R+NrWzwGK/+3gJpqD1t8L2zE";

function agenixd(args: string[]) {
  return spawnSync(process.execPath, [...AGENIXD, ...args], { encoding: "utf8" });
}

test("agenix's example files: system1 opens secret1 and passwordfile-user1, not secret2 or the armored one", () => {
  const system1 = [parseRecipient(SYSTEM1)];
  assert.equal(checkFile("secret1", example("secret1.age"), system1).status, "ok");
  assert.equal(checkFile("pw", example("passwordfile-user1.age"), system1).status, "ok");
  const secret2 = checkFile("secret2", example("secret2.age"), system1);
  assert.equal(secret2.status, "missing");
  assert.match(secret2.reason, /not encrypted to any of the 1 host key\(s\) \(file is for: 1 ssh-ed25519\)/);
  assert.equal(checkFile("armored", example("armored-secret.age"), system1).status, "missing");
  const user1 = [parseRecipient(USER1)];
  for (const f of ["secret1.age", "secret2.age", "armored-secret.age", "passwordfile-user1.age"]) {
    assert.equal(checkFile(f, example(f), user1).status, "ok", f);
  }
});

test("Go age with several recipients: each SSH host key is found by its tag, a stranger is not", () => {
  const dir = mkdtempSync("/tmp/agenixd-rc-");
  const ed = generateSshKey(dir, "ed25519");
  const rsa = generateSshKey(dir, "rsa");
  const other = generateSshKey(dir, "ed25519", 0, "other");
  const age = generateAgeKey(dir);
  const both = ageEncrypt("s", [ed.recipient, rsa.recipient]);
  assert.equal(checkHeader("a", "a", both, [parseRecipient(ed.recipient)]).status, "ok");
  assert.equal(checkHeader("a", "a", both, [parseRecipient(rsa.recipient)]).status, "ok");
  assert.equal(checkHeader("a", "a", both, [parseRecipient(other.recipient)]).status, "missing");
  const armored = ageEncrypt("s", [rsa.recipient, other.recipient], { armor: true });
  assert.equal(checkHeader("a", "a", armored, [parseRecipient(rsa.recipient)]).status, "ok");
  // An X25519 stanza cannot be attributed: not checkable, whether or not the host lists an age key.
  const withAge = ageEncrypt("s", [other.recipient, age.recipient]);
  const r = checkHeader("a", "a", withAge, [parseRecipient(ed.recipient), parseRecipient(age.recipient)]);
  assert.equal(r.status, "uncheckable");
  assert.match(r.reason, /X25519 stanzas cannot be attributed/);
  // …but a matching SSH stanza decides it.
  assert.equal(checkHeader("a", "a", ageEncrypt("s", [ed.recipient, age.recipient]), [parseRecipient(ed.recipient)]).status, "ok");
  // Strict turns not checkable into a failure.
  assert.equal(summarize([r], [], false).ok, true);
  assert.equal(summarize([r], [], true).ok, false);
});

test("bad public keys and bad files get one clear reason", () => {
  assert.throws(() => parseRecipient("ssh-ed25519"), RecipientError);
  assert.throws(() => parseRecipient("ssh-ed25519 !!!"), /not valid base64/);
  // An RSA key's data under the ed25519 name
  const dir = mkdtempSync("/tmp/agenixd-rc-");
  const rsa = generateSshKey(dir, "rsa");
  assert.throws(() => parseRecipient(rsa.recipient.replace("ssh-rsa", "ssh-ed25519")), /is not an ssh-ed25519 key/);
  assert.throws(() => parseRecipient("ecdsa-sha2-nistp256 AAAA"), /not an ssh-ed25519, ssh-rsa or age1… public key/);
  assert.throws(() => parseRecipient("age1yubikey1qwerty"), /plugin recipients cannot be checked/);
  assert.equal(parseRecipient(generateAgeKey(dir).recipient).kind, "X25519");
  const junk = join(dir, "junk.age");
  writeFileSync(junk, "hello\n");
  const j = checkFile("junk", junk, [parseRecipient(USER1)]);
  assert.equal(j.status, "invalid");
  assert.match(j.reason, /not a valid age file: not an age file/);
  assert.equal(checkFile("gone", join(dir, "missing.age"), [parseRecipient(USER1)]).reason, "file does not exist");
});

test("parseCommand: check's usage errors", () => {
  assert.deepEqual(parseCommand(["check", "x.age"]), { kind: "usage", error: "check needs the host's public keys: --recipient KEY or --recipients-file FILE" });
  assert.deepEqual(parseCommand(["check", "-r", USER1]), { kind: "usage", error: "check needs the .age files to check" });
  assert.equal(parseCommand(["check", "-r", USER1, "-r", SYSTEM1, "--json", "a.age", "b.age"]).kind, "check");
});

test("agenixd check: exit codes, the text report and --json, from public keys alone", () => {
  const dir = mkdtempSync("/tmp/agenixd-rc-");
  const keys = join(dir, "host.pub");
  writeFileSync(keys, `# system1\n${SYSTEM1} root@system1\n`);
  const ok = agenixd(["check", "--recipients-file", keys, example("secret1.age"), example("passwordfile-user1.age")]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /2 file\(s\): 2 ok, 0 not for this host/);

  const bad = agenixd(["check", "-r", SYSTEM1, example("secret1.age"), example("secret2.age")]);
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /^error: .*secret2\.age: not encrypted to any of the 1 host key/m);

  const list = join(dir, "secrets.json");
  writeFileSync(list, JSON.stringify([{ name: "db/password", file: example("secret2.age") }]));
  const json = agenixd(["check", "-r", SYSTEM1, "--json", "--secrets-json", list]);
  assert.equal(json.status, 1);
  const parsed = JSON.parse(json.stdout) as { ok: boolean; files: { name: string; status: string }[] };
  assert.equal(parsed.ok, false);
  assert.deepEqual(parsed.files.map((f) => [f.name, f.status]), [["db/password", "missing"]]);

  const badKey = agenixd(["check", "-r", "ssh-ed25519 nope", example("secret1.age")]);
  assert.equal(badKey.status, 2);
  assert.match(badKey.stderr, /agenixd check: ssh-ed25519 public key/);
});
