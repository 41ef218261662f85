import { type KeyObject, createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";

// Fixed DER prefixes that wrap a raw 32-byte X25519 key as PKCS #8 / SPKI.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

export const POINT_BYTES = 32;

/** Makes a KeyObject from a raw scalar (clamped by X25519 itself). Zeroes its temporary DER copy. */
export function x25519PrivateKey(scalar: Uint8Array): KeyObject {
  const der = Buffer.concat([PKCS8_PREFIX, scalar]);
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
  return createPublicKey(privateKey).export({ type: "spki", format: "der" }).subarray(SPKI_PREFIX.length);
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
