import { hkdfSync } from "node:crypto";

/** HKDF-SHA-256 with a 32-byte output; the caller owns (and zeroes) the result. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: string, length = 32): Buffer {
  return Buffer.from(hkdfSync("sha256", ikm, salt, info, length));
}
