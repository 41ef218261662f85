import { createHmac } from "node:crypto";

const HASH_BYTES = 32;
const BLOCK_COUNTER = Buffer.from([1]);

/**
 * HKDF-SHA-256 (RFC 5869) for outputs of at most one block, built on two HMACs: node's hkdfSync
 * costs ~60 µs a call against ~5 µs here, and every secret needs three or four derivations.
 * An empty salt is an HMAC key of zero bytes, which HMAC pads to the same block as RFC 5869's
 * HashLen zeros. The caller owns (and zeroes) the result.
 */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: string, length = HASH_BYTES): Buffer {
  if (length > HASH_BYTES) throw new RangeError("hkdfSha256 produces at most 32 bytes");
  const prk = createHmac("sha256", salt).update(ikm).digest();
  try {
    const okm = createHmac("sha256", prk).update(info).update(BLOCK_COUNTER).digest();
    return length === HASH_BYTES ? okm : okm.subarray(0, length);
  } finally {
    prk.fill(0);
  }
}
