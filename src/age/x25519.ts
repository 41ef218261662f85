import type { KeyObject } from "node:crypto";
import { WRAPPED_FILE_KEY_BYTES, unwrapWithKey } from "./aead.js";
import { decodeBase64NoPad } from "./base64.js";
import { decodeBech32 } from "./bech32.js";
import { POINT_BYTES, x25519, x25519PrivateKey, x25519PublicBytes } from "./curve25519.js";
import { AgeDecryptError } from "./errors.js";
import { hkdfSha256 } from "./kdf.js";
import type { Budget } from "./limits.js";
import type { AgeIdentity, Stanza } from "./stanza.js";

const STANZA_TYPE = "X25519";
const LABEL = "age-encryption.org/v1/X25519";
const PREFIX = Buffer.from("AGE-SECRET-KEY-1", "latin1");

function startsWith(bytes: Uint8Array, prefix: Buffer): boolean {
  return bytes.length >= prefix.length && prefix.equals(bytes.subarray(0, prefix.length));
}

/** A native age X25519 identity (AGE-SECRET-KEY-1…). The scalar lives only inside the KeyObject. */
export class X25519Identity implements AgeIdentity {
  readonly type = STANZA_TYPE;
  readonly #privateKey: KeyObject;
  readonly #publicKey: Buffer;

  private constructor(readonly source: string, privateKey: KeyObject) {
    this.#privateKey = privateKey;
    this.#publicKey = x25519PublicBytes(privateKey);
  }

  /**
   * Parses one AGE-SECRET-KEY-1… line, as ASCII bytes (the identity file's own Buffer: the key
   * never becomes a JS string). Throws a plain Error that never quotes the key.
   */
  static fromBytes(encoded: Uint8Array, source: string): X25519Identity {
    if (!startsWith(encoded, PREFIX)) throw new Error("not an AGE-SECRET-KEY-1 identity");
    const { prefix, bytes } = decodeBech32(encoded);
    try {
      if (prefix !== "age-secret-key-" || bytes.length !== 32) throw new Error("malformed X25519 identity");
      return new X25519Identity(source, x25519PrivateKey(bytes));
    } finally {
      bytes.fill(0);
    }
  }

  /** fromBytes for a key that is already a string (the CCTV vectors). */
  static fromString(encoded: string, source: string): X25519Identity {
    const bytes = Buffer.from(encoded, "latin1");
    try {
      return X25519Identity.fromBytes(bytes, source);
    } finally {
      bytes.fill(0);
    }
  }

  unwrapFileKey(stanzas: readonly Stanza[], budget: Budget): Uint8Array | null {
    for (const stanza of stanzas) {
      if (stanza.args[0] !== STANZA_TYPE) continue;
      // Untagged: every X25519 stanza costs a scalar multiplication to try.
      budget.check();
      if (stanza.args.length !== 2) throw new AgeDecryptError("invalid X25519 stanza: wrong number of arguments");
      const share = decodeBase64NoPad(stanza.args[1]!, "X25519 share");
      if (share.length !== POINT_BYTES) throw new AgeDecryptError("invalid X25519 stanza: share has the wrong length");
      if (stanza.body.length !== WRAPPED_FILE_KEY_BYTES) throw new AgeDecryptError("invalid X25519 stanza: body has the wrong length");
      const secret = x25519(this.#privateKey, share);
      if (secret === null) throw new AgeDecryptError("invalid X25519 stanza: low-order share");
      const wrappingKey = hkdfSha256(secret, Buffer.concat([share, this.#publicKey]), LABEL);
      secret.fill(0);
      const fileKey = unwrapWithKey(wrappingKey, stanza.body);
      wrappingKey.fill(0);
      if (fileKey !== null) return fileKey;
    }
    return null;
  }
}
