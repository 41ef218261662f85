// Step 2: decrypt every selected secret into memory before anything on disk changes.
import { readFileSync } from "node:fs";
import { decryptAge, type AgeIdentity } from "./age/index.js";
import type { SecretSpec } from "./manifest.js";

export type Decrypted =
  | { readonly ok: true; readonly secret: SecretSpec; readonly plaintext: Buffer }
  | { readonly ok: false; readonly secret: SecretSpec; readonly cause: string };

/**
 * One secret at a time, reading synchronously: the work is CPU-bound crypto on one thread and a
 * store file is a page-cache hit, so overlapping reads buys nothing, while a promise-based read
 * costs more than the decryption itself (measured by bench/profile).
 */
export async function decryptAll(secrets: readonly SecretSpec[], identities: readonly AgeIdentity[]): Promise<Decrypted[]> {
  const results: Decrypted[] = [];
  for (const secret of secrets) results.push(await decryptOne(secret, identities));
  return results;
}

async function decryptOne(secret: SecretSpec, identities: readonly AgeIdentity[]): Promise<Decrypted> {
  let ciphertext: Buffer;
  try {
    ciphertext = readFileSync(secret.file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, secret, cause: code === "ENOENT" ? "encrypted file does not exist" : `cannot read encrypted file (${code ?? String(e)})` };
  }
  if (identities.length === 0) return { ok: false, secret, cause: "no usable identity was loaded from identityPaths" };
  try {
    return { ok: true, secret, plaintext: await decryptAge(ciphertext, identities) };
  } catch (e) {
    return { ok: false, secret, cause: (e as Error).message };
  }
}
