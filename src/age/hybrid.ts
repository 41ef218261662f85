import { AgeDecryptError } from "./errors.js";
import type { Budget } from "./limits.js";
import type { AgeIdentity, Stanza } from "./stanza.js";

const STANZA_TYPE = "mlkem768x25519";

type AgeEncryption = typeof import("age-encryption");
let importAgeEncryption = (): Promise<AgeEncryption> => import("age-encryption");

/**
 * Where age-encryption comes from. The startup snapshot leaves it out, since deserialising its
 * ML-KEM and curve code and tables would cost every start a few milliseconds, PQ key or not;
 * src/snapshot.ts loads it from a file beside the blob instead.
 */
export function loadAgeEncryptionWith(load: () => Promise<AgeEncryption>): void {
  importAgeEncryption = load;
}

type UnwrapFn = (stanzas: Stanza[]) => Promise<Uint8Array | null>;

/**
 * An ML-KEM-768 + X25519 hybrid identity (AGE-SECRET-KEY-PQ-1…). node:crypto
 * has no ML-KEM, so this one path uses typage's pure-JS HybridIdentity. typage
 * does not export that class; its Decrypter builds one from the string, and we
 * call the Decrypter's (TypeScript-private, runtime-public) unwrapFileKey.
 * age-encryption is imported only when a PQ key is actually loaded.
 */
export class HybridIdentity implements AgeIdentity {
  readonly type = STANZA_TYPE;
  readonly #unwrap: UnwrapFn;

  private constructor(readonly source: string, unwrap: UnwrapFn) {
    this.#unwrap = unwrap;
  }

  /** Parses one AGE-SECRET-KEY-PQ-1… line. Throws a plain Error that never quotes the key. */
  static async fromString(encoded: string, source: string): Promise<HybridIdentity> {
    if (!encoded.startsWith("AGE-SECRET-KEY-PQ-1")) throw new Error("not an AGE-SECRET-KEY-PQ-1 identity");
    const { Decrypter } = await importAgeEncryption();
    const decrypter = new Decrypter();
    try {
      decrypter.addIdentity(encoded);
    } catch {
      throw new Error("malformed ML-KEM-768+X25519 identity");
    }
    const unwrap = (decrypter as unknown as { unwrapFileKey?: unknown }).unwrapFileKey;
    if (typeof unwrap !== "function") throw new Error("this age-encryption version does not expose Decrypter.unwrapFileKey");
    return new HybridIdentity(source, (unwrap as UnwrapFn).bind(decrypter));
  }

  /**
   * typage tries every mlkem768x25519 stanza (they are untagged), and each costs a pure-JS ML-KEM
   * decapsulation, ~50 ms under --no-opt: it gets them one at a time, so that the file's time
   * budget is checked between them. It only ever looks at its own stanza type.
   */
  async unwrapFileKey(stanzas: readonly Stanza[], budget: Budget): Promise<Uint8Array | null> {
    for (const stanza of stanzas) {
      if (stanza.args[0] !== STANZA_TYPE) continue;
      budget.check();
      let fileKey: Uint8Array | null;
      try {
        fileKey = await this.#unwrap([stanza]);
      } catch (err) {
        const reason = err instanceof Error ? err.message : "unknown error";
        throw new AgeDecryptError(`invalid mlkem768x25519 stanza: ${reason}`);
      }
      if (fileKey !== null) return fileKey;
    }
    return null;
  }
}
