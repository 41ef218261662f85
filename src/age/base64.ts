import { AgeDecryptError } from "./errors.js";

const UNPADDED_BASE64 = /^[A-Za-z0-9+/]*$/;

/**
 * Decodes the unpadded standard base64 the age header uses. Rejects padding,
 * foreign characters and non-canonical encodings (non-zero trailing bits), as
 * the spec requires: Node's own decoder silently accepts all of those.
 */
export function decodeBase64NoPad(text: string, what: string): Buffer {
  if (!UNPADDED_BASE64.test(text) || text.length % 4 === 1) {
    throw new AgeDecryptError(`invalid header: ${what} is not valid unpadded base64`);
  }
  const bytes = Buffer.from(text, "base64");
  if (encodeBase64NoPad(bytes) !== text) {
    throw new AgeDecryptError(`invalid header: ${what} is not canonical base64`);
  }
  return bytes;
}

export function encodeBase64NoPad(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64").replace(/=+$/, "");
}
