export type { AgeIdentity, Stanza } from "./stanza.js";
export { AgeDecryptError, IdentityNotReadyError } from "./errors.js";
export { decryptAge, unlockHeader } from "./decrypt.js";
export { X25519Identity } from "./x25519.js";
export { SshEd25519Identity } from "./ssh-ed25519.js";
export { SshRsaIdentity } from "./ssh-rsa.js";
export { HybridIdentity } from "./hybrid.js";
export { type AgeLimits, DEFAULT_LIMITS, formatBytes } from "./limits.js";
