// Runs the C2SP CCTV age test vectors (npm cctv-age) against decryptAge.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { inflateSync } from "node:zlib";
import * as cctv from "cctv-age";
import { AgeDecryptError, type AgeIdentity, HybridIdentity, X25519Identity, decryptAge } from "../src/age/index.js";

interface Vector {
  name: string;
  expect: string;
  payloadSha256?: string;
  identities: string[];
  passphrases: string[];
  file: Uint8Array;
}

function parseVector(name: string, raw: Uint8Array): Vector {
  const bytes = Buffer.from(raw);
  const split = bytes.indexOf("\n\n");
  assert.ok(split > 0, `${name}: no blank line after the vector header`);
  const fields = bytes.subarray(0, split).toString("utf8").split("\n");
  const vector: Vector = { name, expect: "", identities: [], passphrases: [], file: bytes.subarray(split + 2) };
  let compressed = false;
  for (const field of fields) {
    const colon = field.indexOf(": ");
    const key = field.slice(0, colon);
    const value = field.slice(colon + 2);
    if (key === "expect") vector.expect = value;
    else if (key === "payload") vector.payloadSha256 = value;
    else if (key === "identity") vector.identities.push(value);
    else if (key === "passphrase") vector.passphrases.push(value);
    else if (key === "compressed") compressed = value === "zlib";
  }
  if (compressed) vector.file = inflateSync(vector.file);
  return vector;
}

const vectors = Object.entries(cctv as unknown as Record<string, Uint8Array>)
  .filter(([name, value]) => name !== "default" && value instanceof Uint8Array)
  .map(([name, value]) => parseVector(name, value))
  .sort((a, b) => a.name.localeCompare(b.name));

// agenixd has no passphrases: a vector that can only be opened with one is not applicable.
const notApplicable = vectors.filter((v) => v.passphrases.length > 0 && v.identities.length === 0);
const applicable = vectors.filter((v) => !notApplicable.includes(v));

test("the CCTV testkit is present and complete enough to mean something", () => {
  assert.ok(vectors.length >= 140, `only ${vectors.length} vectors`);
  assert.ok(applicable.filter((v) => v.expect === "success").length >= 20);
  assert.ok(applicable.some((v) => v.identities.some((i) => i.startsWith("AGE-SECRET-KEY-PQ-1"))), "no hybrid vectors");
});

test(`CCTV vectors not applicable (passphrase-only; agenixd has no scrypt): ${notApplicable.length}`, (t) => {
  t.diagnostic(`not applicable: ${notApplicable.map((v) => v.name).join(" ")}`);
  for (const v of notApplicable) assert.ok(v.name.includes("scrypt"), `${v.name} is not an scrypt vector`);
});

async function identitiesFor(v: Vector): Promise<AgeIdentity[]> {
  const ids: AgeIdentity[] = [];
  for (const s of v.identities) {
    ids.push(s.startsWith("AGE-SECRET-KEY-PQ-1") ? await HybridIdentity.fromString(s, v.name) : X25519Identity.fromString(s, v.name));
  }
  return ids;
}

for (const v of applicable) {
  test(`CCTV ${v.name} (${v.expect})`, async () => {
    const identities = await identitiesFor(v);
    if (v.expect === "success") {
      const plaintext = await decryptAge(v.file, identities);
      assert.equal(createHash("sha256").update(plaintext).digest("hex"), v.payloadSha256);
      return;
    }
    await assert.rejects(decryptAge(v.file, identities), (err: unknown) => {
      assert.ok(err instanceof AgeDecryptError, `expected AgeDecryptError, got ${String(err)}`);
      if (v.expect === "no match") assert.match(err.message, /^no identity matches any recipient/);
      if (v.expect === "HMAC failure") assert.match(err.message, /header MAC mismatch/);
      if (v.expect === "payload failure") assert.match(err.message, /payload/);
      if (v.expect === "header failure") assert.doesNotMatch(err.message, /payload|no identity matches/);
      return true;
    });
  });
}
