import { type KeyObject, createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";

export const POINT_BYTES = 32;

/** PKCS #8 PrivateKeyInfo for X25519 (RFC 8410) up to the 32-byte scalar that ends it. */
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/**
 * Makes a KeyObject from a raw scalar (clamped by X25519 itself), as PKCS #8 DER: the one private
 * key import every supported Node accepts (Node 24 refuses a JWK without a valid `x`, and a JWK's
 * `d` is a base64url string that stays in the V8 heap until collected and cannot be zeroed). The
 * DER Buffer is zeroed once OpenSSL has read it. OpenSSL 3's DER decoder costs ~0.35 ms for the
 * first key of a start and ~0.7 ms for each one after it (measured with --no-opt), paid once per
 * host key at start.
 */
export function x25519PrivateKey(scalar: Uint8Array): KeyObject {
  const der = Buffer.alloc(PKCS8_X25519_PREFIX.length + POINT_BYTES);
  PKCS8_X25519_PREFIX.copy(der);
  der.set(scalar, PKCS8_X25519_PREFIX.length);
  try {
    return createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  } finally {
    der.fill(0);
  }
}

export function x25519PublicKey(point: Uint8Array): KeyObject {
  // JWK, not SPKI DER: with OpenSSL 3 the DER decoder costs ~15x more per call,
  // and this runs for every stanza we try.
  const x = Buffer.from(point.buffer, point.byteOffset, point.byteLength).toString("base64url");
  return createPublicKey({ key: { kty: "OKP", crv: "X25519", x }, format: "jwk" });
}

/** The raw public point (u-coordinate) of a private KeyObject. */
export function x25519PublicBytes(privateKey: KeyObject): Buffer {
  const { x } = createPublicKey(privateKey).export({ format: "jwk" });
  return Buffer.from(x!, "base64url");
}

/**
 * X25519(scalar, point). Returns null for the all-zero output of a low-order
 * point, which age forbids (OpenSSL refuses to derive it).
 */
export function x25519(privateKey: KeyObject, point: Uint8Array): Buffer | null {
  try {
    return diffieHellman({ privateKey, publicKey: x25519PublicKey(point) });
  } catch {
    return null;
  }
}
