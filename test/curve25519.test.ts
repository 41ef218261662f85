// src/age/curve25519.ts: a raw scalar imported either way node allows is the same X25519 key
// (RFC 7748, section 6.1's Diffie-Hellman vector), and a low-order point gives no shared secret.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { x25519, x25519PrivateKey, x25519PrivateKeyFromPkcs8, x25519PublicBytes, x25519PublicKey } from "../src/age/curve25519.js";

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ""), "hex");
const alicePrivate = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
const alicePublic = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
const bobPublic = hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
const shared = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

const rawImport = (() => {
  try {
    createPrivateKey({ key: alicePrivate, format: "raw-private", asymmetricKeyType: "x25519" } as unknown as Parameters<typeof createPrivateKey>[0]);
    return true;
  } catch {
    return false;
  }
})();

for (const [route, make] of [["x25519PrivateKey", x25519PrivateKey], ["PKCS #8", x25519PrivateKeyFromPkcs8]] as const) {
  test(`${route}: RFC 7748's vector`, () => {
    const key = make(alicePrivate);
    assert.equal(key.asymmetricKeyType, "x25519");
    assert.deepEqual(x25519PublicBytes(key), alicePublic);
    assert.deepEqual(x25519(key, bobPublic), shared);
    assert.equal(x25519(key, Buffer.alloc(32)), null, "the all-zero output of a low-order point");
    assert.deepEqual(alicePrivate, hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"), "the caller's scalar is left as it was");
  });
}

test(`this node (${process.version}) ${rawImport ? "imports the raw scalar" : "has no raw import: x25519PrivateKey takes PKCS #8"}, and both routes give the same key`, () => {
  const a = x25519PrivateKey(alicePrivate);
  const b = x25519PrivateKeyFromPkcs8(alicePrivate);
  assert.ok(a.equals(b));
  assert.equal(Number(process.versions.node.split(".")[0]) >= 24, rawImport, "Node 24 has format raw-private, Node 22 does not");
});

test("x25519PublicKey (raw where node takes it, else JWK) is the key a JWK import gives, for the vector's and for non-canonical points", () => {
  // 2^255 - 19 + 1 (a u-coordinate past the field's prime) and one with the top bit set: X25519
  // reduces and masks such points, and both imports must hand OpenSSL the same 32 bytes.
  const points = [bobPublic, hex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), hex("0900000000000000000000000000000000000000000000000000000000000080")];
  for (const point of points) {
    const jwk = createPublicKey({ key: { kty: "OKP", crv: "X25519", x: point.toString("base64url") }, format: "jwk" });
    assert.ok(x25519PublicKey(point).equals(jwk), point.toString("hex"));
  }
  assert.deepEqual(x25519(x25519PrivateKey(alicePrivate), points[2]!), x25519(x25519PrivateKey(alicePrivate), hex("0900000000000000000000000000000000000000000000000000000000000000")), "the top bit is masked");
});
