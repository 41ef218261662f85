import { createHash } from "node:crypto";
import { encodeBase64NoPad } from "./base64.js";

/** The 4-byte recipient tag ssh stanzas carry: SHA-256 of the SSH wire-format public key, truncated. */
export function sshKeyTag(sshWirePublicKey: Uint8Array): string {
  return encodeBase64NoPad(createHash("sha256").update(sshWirePublicKey).digest().subarray(0, 4));
}
