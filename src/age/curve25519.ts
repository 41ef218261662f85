import { type KeyObject, createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";

export const POINT_BYTES = 32;

/**
 * Makes a KeyObject from a raw scalar (clamped by X25519 itself).
 * As a JWK, because OpenSSL 3's PKCS #8 DER decoder costs ~2.5 ms at its first use and ~1.4 ms a
 * key after that, against ~1 ms and ~0.3 ms: host keys are loaded at every start. The price is
 * that the scalar passes through a base64url string, which cannot be zeroed (as RSA keys do, see
 * rsa-key.ts). node:crypto imports a private OKP key from `d` alone; `x` must only be a string.
 */
export function x25519PrivateKey(scalar: Uint8Array): KeyObject {
  const d = Buffer.from(scalar.buffer, scalar.byteOffset, scalar.byteLength).toString("base64url");
  return createPrivateKey({ key: { kty: "OKP", crv: "X25519", d, x: "" }, format: "jwk" });
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
