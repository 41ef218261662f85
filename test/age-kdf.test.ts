import { test } from "node:test";
import assert from "node:assert/strict";
import { hkdfSync, randomBytes } from "node:crypto";
import { hkdfSha256 } from "../src/age/kdf.js";

test("hkdfSha256 matches node's HKDF for empty and non-empty salts and short outputs", () => {
  for (const salt of [new Uint8Array(0), randomBytes(16), randomBytes(64), randomBytes(200)]) {
    for (const length of [16, 32]) {
      const ikm = randomBytes(32);
      const info = "age-encryption.org/v1/X25519";
      assert.deepEqual(hkdfSha256(ikm, salt, info, length), Buffer.from(hkdfSync("sha256", ikm, salt, info, length)));
    }
  }
  assert.throws(() => hkdfSha256(randomBytes(32), new Uint8Array(0), "x", 33), RangeError);
});
