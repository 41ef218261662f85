/**
 * The one error decryptAge throws. Its message is a short human cause, fit for
 * a log line; it never contains key material or plaintext.
 */
export class AgeDecryptError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AgeDecryptError";
  }
}
