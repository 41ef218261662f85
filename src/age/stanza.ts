import type { Budget } from "./limits.js";

/** One recipient stanza of an age header. args[0] is the stanza type, e.g. "X25519". */
export interface Stanza {
  readonly args: readonly string[];
  readonly body: Uint8Array;
}

/**
 * A private key that can recover the file key from the stanzas it recognises.
 * Mirrors typage's Identity: return null when no stanza is for this identity;
 * throw only when a stanza is recognisably ours but malformed or undecryptable.
 */
export interface AgeIdentity {
  /** Stanza type this identity unwraps: "X25519" | "ssh-ed25519" | "ssh-rsa" | "mlkem768x25519" */
  readonly type: string;
  /** Where it came from, for logs (a file path). Never key material. */
  readonly source: string;
  /**
   * `budget.check()` is called before each stanza whose trial costs real work, and throws once the
   * file's time is up (src/age/limits.ts).
   */
  unwrapFileKey(stanzas: readonly Stanza[], budget: Budget): Uint8Array | null | Promise<Uint8Array | null>;
}
