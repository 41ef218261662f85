import { createDecipheriv } from "node:crypto";

export const TAG_BYTES = 16;

/**
 * ChaCha20-Poly1305 decryption with node:crypto. Returns null when the tag
 * does not verify; any plaintext already produced is zeroed first.
 */
export function openChaCha20Poly1305(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < TAG_BYTES) return null;
  const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG_BYTES });
  const split = sealed.length - TAG_BYTES;
  decipher.setAuthTag(sealed.subarray(split));
  const plaintext = decipher.update(sealed.subarray(0, split));
  try {
    decipher.final();
  } catch {
    plaintext.fill(0);
    return null;
  }
  return plaintext;
}

const ZERO_NONCE = new Uint8Array(12);

/** Size of a wrapped 16-byte file key: the body of X25519/ssh-ed25519/hybrid stanzas. */
export const WRAPPED_FILE_KEY_BYTES = 16 + TAG_BYTES;

/** Unwraps a stanza body sealed under a one-time wrapping key with the all-zero nonce. */
export function unwrapWithKey(wrappingKey: Uint8Array, body: Uint8Array): Buffer | null {
  return openChaCha20Poly1305(wrappingKey, ZERO_NONCE, body);
}
