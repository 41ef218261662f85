import { type KeyObject, createHash } from "node:crypto";
import { unwrapWithKey } from "./aead.js";
import { decodeBase64NoPad } from "./base64.js";
import { POINT_BYTES, x25519, x25519PrivateKey, x25519PublicBytes } from "./curve25519.js";
import { AgeDecryptError } from "./errors.js";
import { hkdfSha256 } from "./kdf.js";
import type { Budget } from "./limits.js";
import { sshKeyTag } from "./ssh-key-tag.js";
import type { AgeIdentity, Stanza } from "./stanza.js";

const STANZA_TYPE = "ssh-ed25519";
const LABEL = "age-encryption.org/v1/ssh-ed25519";

/**
 * An OpenSSH Ed25519 key used as an age identity (age's agessh). The Ed25519
 * seed is converted to an X25519 scalar once, here, and the per-key tweak is
 * precomputed, so unwrapping costs two X25519 operations and two HKDFs.
 */
export class SshEd25519Identity implements AgeIdentity {
  readonly type = STANZA_TYPE;
  readonly #scalar: KeyObject;
  readonly #tweak: KeyObject;
  readonly #publicKey: Buffer;
  readonly #tag: string;

  /** seed: the 32-byte Ed25519 private seed (not zeroed here: the caller owns it). */
  constructor(readonly source: string, seed: Uint8Array, sshWirePublicKey: Uint8Array) {
    const digest = createHash("sha512").update(seed).digest();
    try {
      this.#scalar = x25519PrivateKey(digest.subarray(0, 32));
    } finally {
      digest.fill(0);
    }
    this.#publicKey = x25519PublicBytes(this.#scalar);
    const tweak = hkdfSha256(new Uint8Array(0), sshWirePublicKey, LABEL);
    this.#tweak = x25519PrivateKey(tweak);
    tweak.fill(0);
    this.#tag = sshKeyTag(sshWirePublicKey);
  }

  unwrapFileKey(stanzas: readonly Stanza[], budget: Budget): Uint8Array | null {
    for (const stanza of stanzas) {
      if (stanza.args[0] !== STANZA_TYPE) continue;
      if (stanza.args.length !== 3) throw new AgeDecryptError("invalid ssh-ed25519 stanza: wrong number of arguments");
      const share = decodeBase64NoPad(stanza.args[2]!, "ssh-ed25519 share");
      if (share.length !== POINT_BYTES) throw new AgeDecryptError("invalid ssh-ed25519 stanza: share has the wrong length");
      if (stanza.args[1] !== this.#tag) continue;
      budget.check();

      const secret = x25519(this.#scalar, share);
      if (secret === null) throw new AgeDecryptError("invalid ssh-ed25519 stanza: low-order share");
      const tweaked = x25519(this.#tweak, secret);
      secret.fill(0);
      if (tweaked === null) throw new AgeDecryptError("invalid ssh-ed25519 stanza: low-order share");
      const wrappingKey = hkdfSha256(tweaked, Buffer.concat([share, this.#publicKey]), LABEL);
      tweaked.fill(0);
      const fileKey = unwrapWithKey(wrappingKey, stanza.body);
      wrappingKey.fill(0);
      // The tag matched, so like Go age we treat failure as fatal rather than "not ours".
      if (fileKey === null) {
        throw new AgeDecryptError(`ssh-ed25519 stanza for ${this.source} (tag ${this.#tag}) does not decrypt (corrupt or tampered file)`);
      }
      return fileKey;
    }
    return null;
  }
}
