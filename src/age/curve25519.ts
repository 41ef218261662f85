import { type KeyObject, createPrivateKey, createPublicKey, diffieHellman } from "node:crypto";

export const POINT_BYTES = 32;

/** PKCS #8 PrivateKeyInfo for X25519 (RFC 8410) up to the 32-byte scalar that ends it. */
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");

/**
 * Whether this node imports and exports raw X25519 keys (`format: "raw-private"` and
 * `"raw-public"`: Node 24, not 22), found once by importing the base point.
 */
let takesRawKeys: boolean | undefined;

function withRawKeys<T>(raw: () => T, other: () => T): T {
  takesRawKeys ??= probeRawKeys();
  return takesRawKeys ? raw() : other();
}

function probeRawKeys(): boolean {
  const basePoint = Buffer.alloc(POINT_BYTES);
  basePoint[0] = 9;
  try {
    createPublicKey({ key: basePoint, format: "raw-public", asymmetricKeyType: "x25519" } as unknown as PublicKeyInput);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_INVALID_ARG_VALUE") return false;
    throw e;
  }
}

/** node's types do not know the raw formats yet. */
type PrivateKeyInput = Parameters<typeof createPrivateKey>[0];
type PublicKeyInput = Parameters<typeof createPublicKey>[0];

/**
 * Makes a KeyObject from a raw scalar (clamped by X25519 itself). Where node takes the raw scalar
 * (Node 24), it gets it as it is: OpenSSL builds the key directly, where a first PKCS #8 import
 * also sets up OpenSSL 3's decoders, ~0.9 ms of a start. Elsewhere (Node 22), as PKCS #8 DER,
 * the one other private key import every supported Node accepts (Node 24 refuses a JWK without
 * a valid `x`, and a JWK's `d` is a base64url string that stays in the V8 heap until collected
 * and cannot be zeroed); the DER Buffer is zeroed once OpenSSL has read it.
 */
export function x25519PrivateKey(scalar: Uint8Array): KeyObject {
  return withRawKeys(
    () => createPrivateKey({ key: scalar, format: "raw-private", asymmetricKeyType: "x25519" } as unknown as PrivateKeyInput),
    () => x25519PrivateKeyFromPkcs8(scalar),
  );
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

/**
 * This runs twice for every ssh-ed25519 stanza tried, once for an X25519 one: the raw point where
 * node takes it (about half a JWK import's cost), else a JWK, not SPKI DER: with OpenSSL 3 the
 * DER decoder costs ~15x more per call.
 */
export function x25519PublicKey(point: Uint8Array): KeyObject {
  return withRawKeys(
    () => createPublicKey({ key: point, format: "raw-public", asymmetricKeyType: "x25519" } as unknown as PublicKeyInput),
    () => createPublicKey({ key: { kty: "OKP", crv: "X25519", x: Buffer.from(point.buffer, point.byteOffset, point.byteLength).toString("base64url") }, format: "jwk" }),
  );
}

/** The raw public point (u-coordinate) of a private KeyObject. */
export function x25519PublicBytes(privateKey: KeyObject): Buffer {
  const publicKey = createPublicKey(privateKey);
  return withRawKeys(
    () => publicKey.export({ format: "raw-public" } as unknown as { format: "der"; type: "spki" }),
    () => Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url"),
  );
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
