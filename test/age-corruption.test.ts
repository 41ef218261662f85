// Damaged files must fail with AgeDecryptError and never yield plaintext.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { AgeDecryptError, type AgeIdentity, decryptAge } from "../src/age/index.js";
import { loadIdentities } from "../src/identities.js";
import { type KeyPair, ageEncrypt, generateSshKey } from "./helpers/age-cli.js";

const SEALED_CHUNK = 64 * 1024 + 16;

let dir: string;
let ed25519: KeyPair;
let rsa: KeyPair;
let identities: AgeIdentity[];
let small: Buffer; // one chunk
let large: Buffer; // three chunks, the last one partial
const largePlaintext = randomBytes(2 * 64 * 1024 + 100);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agenixd-age-corruption-"));
  ed25519 = generateSshKey(dir, "ed25519");
  rsa = generateSshKey(dir, "rsa");
  identities = await loadIdentities([ed25519.privatePath, rsa.privatePath], (w) => assert.fail(`${w.path}: ${w.reason}`));
  small = ageEncrypt("a short secret\n", [ed25519.recipient, rsa.recipient]);
  large = ageEncrypt(largePlaintext, [ed25519.recipient]);
  // Sanity: the undamaged files decrypt, so every failure below is caused by the damage.
  assert.equal((await decryptAge(small, identities)).toString(), "a short secret\n");
  assert.ok((await decryptAge(large, identities)).equals(largePlaintext));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function headerLength(file: Buffer): number {
  const macLine = file.indexOf("\n--- ");
  return file.indexOf("\n", macLine + 1) + 1;
}

function flipped(file: Buffer, offset: number): Buffer {
  const copy = Buffer.from(file);
  copy[offset]! ^= 0x01;
  return copy;
}

async function assertFails(file: Uint8Array, pattern: RegExp, ids: AgeIdentity[] = identities): Promise<void> {
  await assert.rejects(decryptAge(file, ids), (err: unknown) => {
    assert.ok(err instanceof AgeDecryptError, `expected AgeDecryptError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test("every single-bit flip in the header is rejected", async () => {
  const end = headerLength(small);
  for (let offset = 0; offset < end; offset++) {
    await assert.rejects(decryptAge(flipped(small, offset), identities), AgeDecryptError, `flip at header byte ${offset}`);
  }
});

test("a flipped MAC byte is a MAC mismatch; a flipped version byte is not an age file", async () => {
  const macStart = small.indexOf("\n--- ") + 5;
  const otherMac = Buffer.from(small);
  otherMac[macStart + 3] = otherMac[macStart + 3] === 0x41 ? 0x42 : 0x41; // still canonical base64
  await assertFails(otherMac, /^header MAC mismatch \(corrupt or tampered file\)$/);
  await assertFails(flipped(small, 2), /^not an age file$/);
  await assertFails(Buffer.from("hello, not age at all\n"), /^not an age file$/);
});

test("a flipped byte in the payload nonce or in any chunk is rejected", async () => {
  const start = headerLength(large);
  const offsets = [start, start + 15, start + 16, start + 16 + SEALED_CHUNK + 5, large.length - 1];
  for (const offset of offsets) await assertFails(flipped(large, offset), /payload authentication failed/);
});

test("truncation anywhere is rejected, including exactly at a chunk boundary", async () => {
  const start = headerLength(large);
  const cuts = [0, 10, start - 1, start, start + 8, start + 16, start + 16 + 15, start + 16 + SEALED_CHUNK, start + 16 + 2 * SEALED_CHUNK, large.length - 1];
  for (const cut of cuts) {
    await assert.rejects(decryptAge(large.subarray(0, cut), identities), AgeDecryptError, `cut at ${cut}`);
  }
  await assertFails(large.subarray(0, start + 16 + SEALED_CHUNK), /payload authentication failed/);
  await assertFails(small.subarray(0, headerLength(small)), /no nonce/);
});

test("trailing data after the last chunk is rejected", async () => {
  await assertFails(Buffer.concat([small, Buffer.from("x")]), /payload authentication failed/);
  await assertFails(Buffer.concat([large, randomBytes(SEALED_CHUNK)]), /payload/);
});

test("a wrong tag in an ssh stanza means no identity matches", async () => {
  const onlyEd = ageEncrypt("x", [ed25519.recipient]).toString("latin1");
  const stanza = /^-> ssh-ed25519 (\S+) /m.exec(onlyEd);
  assert.ok(stanza);
  const tag = stanza[1]!;
  const otherTag = tag.startsWith("A") ? `B${tag.slice(1)}` : `A${tag.slice(1)}`;
  const retagged = Buffer.from(onlyEd.replace(`-> ssh-ed25519 ${tag} `, `-> ssh-ed25519 ${otherTag} `), "latin1");
  await assertFails(retagged, /^no identity matches any recipient \(file is for: ssh-ed25519\)$/);

  const onlyRsa = ageEncrypt("x", [rsa.recipient]).toString("latin1");
  const rsaTag = /^-> ssh-rsa (\S+)$/m.exec(onlyRsa)![1]!;
  const otherRsaTag = rsaTag.startsWith("A") ? `B${rsaTag.slice(1)}` : `A${rsaTag.slice(1)}`;
  await assertFails(Buffer.from(onlyRsa.replace(`-> ssh-rsa ${rsaTag}\n`, `-> ssh-rsa ${otherRsaTag}\n`), "latin1"), /^no identity matches any recipient \(file is for: ssh-rsa\)$/);
});

test("the no-match error lists a header's first five recipient types, each cut short", async () => {
  // Unknown stanzas are skipped, so a header of strangers reaches the error. Its types are the
  // file's text: the message lists a few of them, shortened, whatever the header holds.
  const file = ageEncrypt("x", [ed25519.recipient]).toString("latin1");
  const tag = /^-> ssh-ed25519 (\S+) /m.exec(file)![1]!;
  const otherTag = tag.startsWith("A") ? `B${tag.slice(1)}` : `A${tag.slice(1)}`;
  const long = "t".repeat(100);
  const strangers = ["one", "two", "one", long, "three", "four", "five", "six"].map((t) => `-> ${t}\nAAAA\n`).join("");
  const crafted = file.replace(`-> ssh-ed25519 ${tag} `, `${strangers}-> ssh-ed25519 ${otherTag} `);
  await assertFails(Buffer.from(crafted, "latin1"), new RegExp(`^no identity matches any recipient \\(file is for: one, two, ${"t".repeat(40)}…, three, four and 3 more\\)$`));
});

test("an ssh stanza whose tag matches but whose body is damaged is a hard error naming the key file", async () => {
  const onlyEd = ageEncrypt("x", [ed25519.recipient]);
  const bodyStart = onlyEd.indexOf("\n", onlyEd.indexOf("-> ssh-ed25519")) + 1;
  const damaged = Buffer.from(onlyEd);
  damaged[bodyStart + 2] = damaged[bodyStart + 2] === 0x41 ? 0x42 : 0x41; // another base64 letter
  await assertFails(damaged, new RegExp(`^ssh-ed25519 stanza for ${ed25519.privatePath} \\(tag \\S+\\) does not decrypt`));

  const onlyRsa = ageEncrypt("x", [rsa.recipient]);
  const rsaBody = onlyRsa.indexOf("\n", onlyRsa.indexOf("-> ssh-rsa")) + 1;
  const damagedRsa = Buffer.from(onlyRsa);
  damagedRsa[rsaBody + 2] = damagedRsa[rsaBody + 2] === 0x41 ? 0x42 : 0x41;
  await assertFails(damagedRsa, new RegExp(`^ssh-rsa stanza for ${rsa.privatePath} \\(tag \\S+\\) does not decrypt`));
});

test("armor damage is rejected", async () => {
  const armored = ageEncrypt("x", [ed25519.recipient], { armor: true }).toString("latin1");
  await assertFails(Buffer.from(armored.replace("-----END AGE ENCRYPTED FILE-----", "-----END AGE FILE-----")), /invalid armor/);
  await assertFails(Buffer.from(armored.replace("\n", "\nX")), /invalid armor/);
  await assertFails(Buffer.from(`garbage\n${armored}`), /not an age file/);
  await assertFails(Buffer.from(`${armored}garbage\n`), /invalid armor/);
  assert.equal((await decryptAge(Buffer.from(`\n  ${armored.replaceAll("\n", "\r\n")}  \n`), identities)).toString(), "x");
});

test("errors never carry plaintext or key bytes", async () => {
  const secret = "TOP-SECRET-PLAINTEXT";
  const file = ageEncrypt(secret, [ed25519.recipient]);
  const start = headerLength(file);
  for (const damaged of [flipped(file, start + 20), file.subarray(0, file.length - 1), flipped(file, 30)]) {
    await assert.rejects(decryptAge(damaged, identities), (err: unknown) => {
      assert.ok(err instanceof AgeDecryptError);
      assert.ok(!err.message.includes(secret) && !String(err.stack).includes(secret));
      return true;
    });
  }
});
