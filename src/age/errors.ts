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

/**
 * An identity that could not be used for a file (an age plugin that failed, refused or asked for
 * what nobody can give at boot): decryptAge tries the next identities, and throws this only when
 * none of them unwraps the file.
 */
export class IdentityUnavailableError extends AgeDecryptError {}

/**
 * An identity that cannot be used yet: its plugin reaches its device through a service that is
 * not there yet (pcscd at early boot: src/age/plugin-unwrap.ts). `waitsFor` names the unit.
 */
export class IdentityNotReadyError extends IdentityUnavailableError {
  constructor(
    message: string,
    readonly waitsFor: string,
  ) {
    super(message);
    this.name = "IdentityNotReadyError";
  }
}
