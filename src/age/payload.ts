import { AgeDecryptError } from "./errors.js";
import { TAG_BYTES, openChaCha20Poly1305 } from "./aead.js";
import { hkdfSha256 } from "./kdf.js";
import type { Budget } from "./limits.js";

const NONCE_BYTES = 16;
const CHUNK_BYTES = 64 * 1024;
const SEALED_CHUNK_BYTES = CHUNK_BYTES + TAG_BYTES;

/**
 * Decrypts the age payload (nonce + STREAM of ChaCha20-Poly1305 chunks) in full.
 * Either every chunk authenticates and the whole plaintext is returned, or an
 * AgeDecryptError is thrown and whatever was decrypted has been zeroed.
 */
export function decryptPayload(fileKey: Uint8Array, payload: Uint8Array, budget: Budget): Buffer {
  if (payload.length < NONCE_BYTES) throw new AgeDecryptError("truncated file: no nonce after the header");
  const streamKey = hkdfSha256(fileKey, payload.subarray(0, NONCE_BYTES), "payload");
  try {
    return decryptStream(streamKey, payload.subarray(NONCE_BYTES), budget);
  } finally {
    streamKey.fill(0);
  }
}

function decryptStream(key: Uint8Array, sealed: Uint8Array, budget: Budget): Buffer {
  if (sealed.length === 0) throw new AgeDecryptError("truncated payload (no chunks)");
  const chunkCount = Math.ceil(sealed.length / SEALED_CHUNK_BYTES);
  const nonce = Buffer.alloc(12);
  // A single chunk (every small secret) is returned without an extra copy.
  if (chunkCount === 1) return openChunk(key, nonce, sealed, 0, true);

  const plaintext = Buffer.allocUnsafeSlow(sealed.length - chunkCount * TAG_BYTES);
  let written = 0;
  try {
    for (let i = 0; i < chunkCount; i++) {
      budget.check();
      const chunk = sealed.subarray(i * SEALED_CHUNK_BYTES, (i + 1) * SEALED_CHUNK_BYTES);
      const opened = openChunk(key, nonce, chunk, i, i === chunkCount - 1);
      opened.copy(plaintext, written);
      written += opened.length;
      opened.fill(0);
    }
  } catch (err) {
    plaintext.fill(0);
    throw err;
  }
  return plaintext;
}

function openChunk(key: Uint8Array, nonce: Buffer, chunk: Uint8Array, index: number, last: boolean): Buffer {
  if (chunk.length < TAG_BYTES) throw new AgeDecryptError("truncated payload (short final chunk)");
  // The last chunk may be empty only when it is also the first: an empty file.
  if (last && index > 0 && chunk.length === TAG_BYTES) throw new AgeDecryptError("invalid payload (empty final chunk)");
  // STREAM nonce: 11-byte big-endian chunk counter, then 1 for the final chunk.
  nonce.writeUIntBE(index, 5, 6);
  nonce[11] = last ? 1 : 0;
  const opened = openChaCha20Poly1305(key, nonce, chunk);
  if (opened === null) {
    throw new AgeDecryptError(
      last
        ? "payload authentication failed (corrupt, truncated or tampered file)"
        : `payload authentication failed in chunk ${index} (corrupt or tampered file)`,
    );
  }
  return opened;
}
