import { type KeyObject, constants, privateDecrypt } from "node:crypto";
import { AgeDecryptError } from "./errors.js";
import type { Budget } from "./limits.js";
import { sshKeyTag } from "./ssh-key-tag.js";
import type { AgeIdentity, Stanza } from "./stanza.js";

const STANZA_TYPE = "ssh-rsa";
const OAEP_LABEL = Buffer.from("age-encryption.org/v1/ssh-rsa");

/** An OpenSSH/PEM RSA key used as an age identity: RSA-OAEP-SHA256 with age's label. */
export class SshRsaIdentity implements AgeIdentity {
  readonly type = STANZA_TYPE;
  readonly #privateKey: KeyObject;
  readonly #tag: string;

  constructor(readonly source: string, privateKey: KeyObject, sshWirePublicKey: Uint8Array) {
    this.#privateKey = privateKey;
    this.#tag = sshKeyTag(sshWirePublicKey);
  }

  unwrapFileKey(stanzas: readonly Stanza[], budget: Budget): Uint8Array | null {
    for (const stanza of stanzas) {
      if (stanza.args[0] !== STANZA_TYPE) continue;
      if (stanza.args.length !== 2) throw new AgeDecryptError("invalid ssh-rsa stanza: wrong number of arguments");
      if (stanza.args[1] !== this.#tag) continue;
      budget.check();
      try {
        return privateDecrypt(
          { key: this.#privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: OAEP_LABEL },
          stanza.body,
        );
      } catch {
        throw new AgeDecryptError(`ssh-rsa stanza for ${this.source} (tag ${this.#tag}) does not decrypt (corrupt or tampered file)`);
      }
    }
    return null;
  }
}
