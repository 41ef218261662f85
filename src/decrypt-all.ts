// Step 2: decrypt every selected secret into memory before anything on disk changes.
import { readFile } from "node:fs/promises";
import { decryptAge, type AgeIdentity } from "./age/index.js";
import type { SecretSpec } from "./manifest.js";

export type Decrypted =
  | { readonly ok: true; readonly secret: SecretSpec; readonly plaintext: Buffer }
  | { readonly ok: false; readonly secret: SecretSpec; readonly cause: string };

export async function decryptAll(secrets: readonly SecretSpec[], identities: readonly AgeIdentity[], concurrency = 16): Promise<Decrypted[]> {
  const results: Decrypted[] = new Array(secrets.length);
  let next = 0;
  const worker = async () => {
    while (next < secrets.length) {
      const i = next++;
      results[i] = await decryptOne(secrets[i]!, identities);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, secrets.length) }, worker));
  return results;
}

async function decryptOne(secret: SecretSpec, identities: readonly AgeIdentity[]): Promise<Decrypted> {
  let ciphertext: Buffer;
  try {
    ciphertext = await readFile(secret.file);
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
