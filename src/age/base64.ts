import { AgeDecryptError } from "./errors.js";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const UNPADDED_BASE64 = /^[A-Za-z0-9+/]*$/;
/** Bits of the last character that carry no data, by the text's length mod 4 (1 is never valid). */
const UNUSED_BITS_MASK = [0, 0, 0b1111, 0b11];

/**
 * Decodes the unpadded standard base64 the age header uses. Rejects padding,
 * foreign characters and non-canonical encodings (non-zero trailing bits), as
 * the spec requires: Node's own decoder silently accepts all of those.
 */
export function decodeBase64NoPad(text: string, what: string): Buffer {
  if (!UNPADDED_BASE64.test(text) || text.length % 4 === 1) {
    throw new AgeDecryptError(`invalid header: ${what} is not valid unpadded base64`);
  }
  // Canonical means the bits past the last byte are zero; checked on the last character rather
  // than by encoding the bytes again (this runs a few times per secret, in cold code).
  if (text.length > 0 && (ALPHABET.indexOf(text[text.length - 1]!) & UNUSED_BITS_MASK[text.length % 4]!) !== 0) {
    throw new AgeDecryptError(`invalid header: ${what} is not canonical base64`);
  }
  return Buffer.from(text, "base64");
}

export function encodeBase64NoPad(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64").replace(/=+$/, "");
}
