import { type KeyObject, createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";

export const POINT_BYTES = 32;

/** PKCS #8 PrivateKeyInfo for X25519 (RFC 8410) up to the 32-byte scalar that ends it. */
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/** Whether this node imports a raw scalar (`format: "raw-private"`: Node 24, not 22); found at the first import. */
let importsRawScalar: boolean | undefined;

/**
 * Makes a KeyObject from a raw scalar (clamped by X25519 itself). Where node takes the raw scalar
 * (Node 24), it gets it as it is: OpenSSL builds the key directly, where a first PKCS #8 import
 * also sets up OpenSSL 3's decoders, ~0.9 ms of a start. Elsewhere (Node 22), as PKCS #8 DER,
 * the one other private key import every supported Node accepts (Node 24 refuses a JWK without
 * a valid `x`, and a JWK's `d` is a base64url string that stays in the V8 heap until collected
 * and cannot be zeroed); the DER Buffer is zeroed once OpenSSL has read it.
 */
export function x25519PrivateKey(scalar: Uint8Array): KeyObject {
  if (importsRawScalar !== false) {
    try {
      const key = createPrivateKey({ key: scalar, format: "raw-private", asymmetricKeyType: "x25519" } as unknown as Parameters<typeof createPrivateKey>[0]);
      importsRawScalar = true;
      return key;
    } catch (e) {
      if (importsRawScalar === true || (e as NodeJS.ErrnoException).code !== "ERR_INVALID_ARG_VALUE") throw e;
      importsRawScalar = false;
    }
  }
  return x25519PrivateKeyFromPkcs8(scalar);
}

/** The PKCS #8 route of x25519PrivateKey, the one Node 22 takes. */
export function x25519PrivateKeyFromPkcs8(scalar: Uint8Array): KeyObject {
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
