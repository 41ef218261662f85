// Interop with Debian's Go age 1.1.1 (the files agenix users actually have) and with typage.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Encrypter, generateHybridIdentity, generateX25519Identity, identityToRecipient } from "age-encryption";
import { AgeDecryptError, type AgeIdentity, decryptAge } from "../src/age/index.js";
import { loadIdentities } from "../src/identities.js";
import { type KeyPair, ageDecrypt, ageEncrypt, generateAgeKey, generateSshKey } from "./helpers/age-cli.js";

const CHUNK = 64 * 1024;

let dir: string;
const keys: Record<string, KeyPair> = {};
const ids: Record<string, AgeIdentity[]> = {};

async function load(...paths: string[]): Promise<AgeIdentity[]> {
  const warnings: string[] = [];
  const loaded = await loadIdentities(paths, (w) => warnings.push(`${w.path}: ${w.reason}`));
  assert.deepEqual(warnings, []);
  return loaded;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agenixd-age-interop-"));
  keys["ssh-ed25519"] = generateSshKey(dir, "ed25519");
  keys["ssh-rsa-2048"] = generateSshKey(dir, "rsa", 2048, "rsa2048");
  keys["ssh-rsa-4096"] = generateSshKey(dir, "rsa", 4096, "rsa4096");
  keys["X25519"] = generateAgeKey(dir);
  for (const [name, pair] of Object.entries(keys)) ids[name] = await load(pair.privatePath);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const expectedType: Record<string, string> = {
  "ssh-ed25519": "ssh-ed25519",
  "ssh-rsa-2048": "ssh-rsa",
  "ssh-rsa-4096": "ssh-rsa",
  X25519: "X25519",
};

describe("files written by Go age decrypt to the exact bytes", () => {
  for (const name of Object.keys(expectedType)) {
    for (const armor of [false, true]) {
      test(`${name}, ${armor ? "armored" : "binary"}`, async () => {
        assert.equal(ids[name]!.length, 1);
        assert.equal(ids[name]![0]!.type, expectedType[name]);
        const plaintext = randomBytes(1000);
        const file = ageEncrypt(plaintext, [keys[name]!.recipient], { armor });
        if (armor) assert.match(file.toString("latin1"), /^-----BEGIN AGE ENCRYPTED FILE-----\n/);
        assert.deepEqual(await decryptAge(file, ids[name]!), plaintext);
      });
    }
  }

  test("a file for several recipient types opens with each identity alone and with all of them", async () => {
    const plaintext = Buffer.from("shared secret for many hosts\n");
    const names = Object.keys(expectedType);
    const file = ageEncrypt(plaintext, names.map((n) => keys[n]!.recipient));
    for (const name of names) assert.deepEqual(await decryptAge(file, ids[name]!), plaintext, name);
    assert.deepEqual(await decryptAge(file, names.flatMap((n) => ids[n]!)), plaintext);
    const armored = ageEncrypt(plaintext, names.map((n) => keys[n]!.recipient), { armor: true });
    assert.deepEqual(await decryptAge(armored, [...ids["ssh-rsa-4096"]!, ...ids["X25519"]!]), plaintext);
  });

  test("empty plaintext, binary and armored", async () => {
    for (const armor of [false, true]) {
      const out = await decryptAge(ageEncrypt(new Uint8Array(0), [keys["ssh-ed25519"]!.recipient], { armor }), ids["ssh-ed25519"]!);
      assert.equal(out.length, 0);
    }
  });

  // Sizes on and around the 64 KiB STREAM chunk boundary, and 1 MiB (16 full chunks) ± a few bytes.
  const sizes = [1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 16 * CHUNK - 3, 16 * CHUNK, 16 * CHUNK + 5];
  for (const size of sizes) {
    test(`large plaintext of ${size} bytes (${(size / CHUNK).toFixed(3)} chunks)`, async () => {
      const plaintext = randomBytes(size);
      const binary = ageEncrypt(plaintext, [keys["X25519"]!.recipient]);
      assert.ok((await decryptAge(binary, ids["X25519"]!)).equals(plaintext));
      const armored = ageEncrypt(plaintext, [keys["ssh-ed25519"]!.recipient], { armor: true });
      assert.ok((await decryptAge(armored, ids["ssh-ed25519"]!)).equals(plaintext));
    });
  }
});

describe("wrong keys", () => {
  test("no matching identity names the file's recipient types", async () => {
    const file = ageEncrypt("x", [keys["ssh-ed25519"]!.recipient, keys["X25519"]!.recipient]);
    const other = generateSshKey(dir, "ed25519", 0, "other_ed25519");
    const otherAge = generateAgeKey(dir, "other.key");
    const wrong = await load(other.privatePath, otherAge.privatePath, keys["ssh-rsa-2048"]!.privatePath);
    await assert.rejects(decryptAge(file, wrong), (err: unknown) => {
      assert.ok(err instanceof AgeDecryptError);
      assert.equal(err.message, "no identity matches any recipient (file is for: ssh-ed25519, X25519)");
      return true;
    });
  });

  test("no identities at all says so", async () => {
    const file = ageEncrypt("x", [keys["ssh-rsa-2048"]!.recipient]);
    await assert.rejects(decryptAge(file, []), /no identity matches any recipient \(file is for: ssh-rsa; no identities are loaded\)/);
  });
});

describe("typage (age-encryption) interop", () => {
  test("ML-KEM-768+X25519 hybrid files written by typage decrypt with ours", async () => {
    const identity = await generateHybridIdentity();
    const path = join(dir, "pq.key");
    writeFileSync(path, `# created: by the test\n# public key: ${await identityToRecipient(identity)}\n${identity}\n`, { mode: 0o600 });
    const pq = await load(path);
    assert.deepEqual(pq.map((i) => i.type), ["mlkem768x25519"]);

    const encrypter = new Encrypter();
    encrypter.addRecipient(await identityToRecipient(identity));
    encrypter.addRecipient(keys["X25519"]!.recipient);
    for (const size of [0, 17, CHUNK + 1]) {
      const plaintext = randomBytes(size);
      const file = await encrypter.encrypt(plaintext);
      assert.ok((await decryptAge(file, pq)).equals(plaintext), `hybrid, ${size} bytes`);
      assert.ok((await decryptAge(file, ids["X25519"]!)).equals(plaintext), `X25519 in a hybrid file, ${size} bytes`);
    }
    const otherPq = await generateHybridIdentity();
    const otherPath = join(dir, "other-pq.key");
    writeFileSync(otherPath, `${otherPq}\n`, { mode: 0o600 });
    const onlyPq = new Encrypter();
    onlyPq.addRecipient(await identityToRecipient(identity));
    await assert.rejects(decryptAge(await onlyPq.encrypt("x"), await load(otherPath)), /no identity matches any recipient \(file is for: mlkem768x25519\)/);
  });

  test("X25519 files written by typage decrypt with ours and with Go age", async () => {
    const identity = await generateX25519Identity();
    const path = join(dir, "typage-x25519.key");
    writeFileSync(path, `${identity}\n`, { mode: 0o600 });
    const encrypter = new Encrypter();
    encrypter.addRecipient(await identityToRecipient(identity));
    encrypter.addRecipient(keys["X25519"]!.recipient);
    const plaintext = randomBytes(3 * CHUNK + 7);
    const file = await encrypter.encrypt(plaintext);
    assert.ok(ageDecrypt(file, [path]).equals(plaintext), "Go age");
    assert.ok(ageDecrypt(file, [keys["X25519"]!.privatePath]).equals(plaintext), "Go age, other recipient");
    assert.ok((await decryptAge(file, await load(path))).equals(plaintext), "ours");
  });
});
