// Encrypted credentials (issue 24, item 3): with the manifest's `encryptedCredstore`, each
// credential secret is re-sealed by `systemd-creds encrypt` with the host's credential key and
// published as `${dir}/<id>` (/run/credstore.encrypted), where a unit's
// `LoadCredentialEncrypted=<id>`, without a path, finds it. systemd (src/core/exec-credential.c,
// load_credential) searches the encrypted stores (/etc/credstore.encrypted, /run/credstore.encrypted,
// /usr/local/lib/credstore.encrypted, /usr/lib/credstore.encrypted) before the plain ones, reads the
// file (base64, at most CREDENTIAL_ENCRYPTED_SIZE_MAX) following symlinks, and decrypts it as PID 1
// with the name the unit loads it under, which must be the name embedded at encryption
// (`--name=<id>`; otherwise "Embedded credential name … does not match"). The plaintext then exists
// only in that unit's own credentials directory: neither the secret's file in secretsDir nor a
// plaintext credential is written for such a secret (docs/module.md).
//
// Layout in each generation: `credstore.encrypted/sealed/<id>` (root, 0400, the base64 blob) and
// `credstore.encrypted/index.json` (root, 0400): a random 32-byte key of this boot's first
// generation, carried forward, and per credential HMAC-SHA256(key, plaintext) with the key type it
// was sealed with. Encryption is randomised, so a blob cannot be compared with a plaintext; the
// digest tells a changed secret (re-sealed, its units restarted) from an unchanged one (the live
// generation's blob is copied: no systemd-creds run). Whoever can read the index (root with
// CAP_DAC_OVERRIDE, on the ramfs) can as well run systemd-creds decrypt on the blob: it gives away
// nothing the blob does not. `${dir}` holds one symlink per credential into the live generation,
// like /run/credstore (src/credstore.ts), so the swap of secretsDir switches them all at once.
import { childProcess } from "./child-process.js";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { availableParallelism } from "node:os";
import { credentialId } from "./credstore.js";
import { compareSecret, type SecretChange } from "./changes.js";
import { findSystemdCreds, systemdCredsEnv, systemdCredsFailure } from "./sealed-identity.js";
import { makeDirs, readFileNoFollow, writeNewFile, type Ownership } from "./secure-fs.js";

/** The directory of each generation that holds the sealed credentials and their index. */
export const ENCRYPTED_ENTRY = "credstore.encrypted";
/** Below ENCRYPTED_ENTRY: the blobs, by credential name. */
export const SEALED_DIR = "sealed";
const INDEX_FILE = "index.json";

/** The key types agenixd passes to `systemd-creds encrypt --with-key=` (docs/module.md). */
export const WITH_KEYS = ["auto", "host", "tpm2", "host+tpm2"] as const;
export type WithKey = (typeof WITH_KEYS)[number];

/** systemd's CREDENTIAL_SIZE_MAX is 1 MiB; its base64 blob with headers stays far below this. */
const MAX_BLOB_BYTES = 4 * 1024 * 1024;
/** A TPM may be slow; a hung one must not hold the boot. Per credential. */
export const SEAL_TIMEOUT_MS = 30_000;
/** A blob systemd-creds printed is base64 text (systemd reads it with READ_FULL_FILE_UNBASE64). */
const BASE64 = /^[A-Za-z0-9+/=\s]+$/;

/** Where a credential's blob is, relative to a generation. */
export function sealedEntry(secretName: string): string {
  return `${ENCRYPTED_ENTRY}/${SEALED_DIR}/${credentialId(secretName)}`;
}

interface IndexEntry {
  readonly digest: string;
  readonly withKey: WithKey;
}

interface Index {
  readonly key: Buffer;
  readonly entries: ReadonlyMap<string, IndexEntry>;
}

/** The live generation's index; none (a first generation, or one written without it) gives a new key and no entries. */
export function readIndex(prevDir: string | undefined): Index {
  if (prevDir !== undefined) {
    try {
      const { data } = readFileNoFollow(`${prevDir}/${ENCRYPTED_ENTRY}/${INDEX_FILE}`);
      const json = JSON.parse(data.toString("utf8")) as { version?: unknown; key?: unknown; entries?: unknown };
      data.fill(0);
      if (json.version === 1 && typeof json.key === "string" && typeof json.entries === "object" && json.entries !== null) {
        const key = Buffer.from(json.key, "base64");
        const entries = new Map<string, IndexEntry>();
        for (const [id, e] of Object.entries(json.entries as Record<string, { digest?: unknown; withKey?: unknown }>)) {
          if (typeof e?.digest === "string" && WITH_KEYS.includes(e.withKey as WithKey)) entries.set(id, { digest: e.digest, withKey: e.withKey as WithKey });
        }
        if (key.length === 32) return { key, entries };
      }
    } catch {
      // absent or unreadable: every credential counts as new, and is sealed
    }
  }
  return { key: randomBytes(32), entries: new Map() };
}

function digestOf(key: Buffer, plaintext: Uint8Array): string {
  return createHmac("sha256", key).update(plaintext).digest("hex");
}

function sameDigest(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/**
 * The changes of encrypted credentials against the live generation, as src/diff.ts gives them
 * for files: added (not in its index) or modified in content (another digest). Owner, group and
 * mode do not apply: the unit's copy is made by systemd for the unit's user.
 */
export function diffEncryptedCredentials(prevDir: string | undefined, planned: readonly { readonly name: string; readonly plaintext: Buffer }[]): { changes: SecretChange[]; unchanged: string[] } {
  const index = readIndex(prevDir);
  const changes: SecretChange[] = [];
  const unchanged: string[] = [];
  for (const p of planned) {
    const previous = index.entries.get(credentialId(p.name));
    if (previous === undefined) {
      changes.push(compareSecret(p.name, undefined, { data: p.plaintext, uid: 0, gid: 0, mode: 0 })!);
    } else if (!sameDigest(previous.digest, digestOf(index.key, p.plaintext))) {
      changes.push({ kind: "modified", name: p.name, aspects: ["content"] });
    } else {
      unchanged.push(p.name);
    }
  }
  index.key.fill(0);
  return { changes, unchanged };
}

/** One credential's outcome in a new generation. */
export interface SealOutcome {
  readonly name: string;
  /** sealed: systemd-creds ran; reused: the live blob copied (same plaintext, same key type); kept: a failure, the live blob carried over. */
  readonly how: "sealed" | "reused" | "kept" | "none";
  /** Why it has no new blob (with `kept`: the previous one stays; with `none`: there is none). */
  readonly cause?: string;
}

/** What a credential gets this time: its plaintext, why it has none, or nothing (not in this phase: kept as it was). */
export type CredentialValue = { readonly ok: true; readonly data: Buffer } | { readonly ok: false; readonly cause: string } | undefined;

export interface SealOptions {
  readonly withKey: WithKey;
  readonly env?: NodeJS.ProcessEnv;
  /** How many systemd-creds run at once (default: the CPUs, at most 4; a TPM serialises anyway). */
  readonly parallel?: number;
}

/**
 * Writes the sealed credentials of one new generation: each with a new plaintext is compared with
 * the live index and its blob copied (unchanged) or re-sealed (changed, new, or another key type);
 * one without (decryption failed, or not in this phase) and one whose sealing fails keep the live
 * blob if there is one. Every file is created with its final owner and mode before a byte.
 * Failures are the credential's, never the generation's.
 */
export async function writeEncryptedCredentials(
  genDir: string, prevDir: string | undefined, items: readonly { readonly name: string; readonly value: CredentialValue }[], own: Ownership, dirOwn: Ownership, options: SealOptions,
): Promise<SealOutcome[]> {
  const index = readIndex(prevDir);
  makeDirs(genDir, `${ENCRYPTED_ENTRY}/${SEALED_DIR}`, dirOwn);
  const entries = new Map<string, IndexEntry>();
  const outcomes: SealOutcome[] = new Array(items.length);
  const toSeal: { at: number; name: string; id: string; data: Buffer; digest: string }[] = [];
  let tool: string | undefined;
  let toolProblem: string | undefined;

  const keep = (at: number, name: string, id: string, cause: string | undefined): void => {
    const previous = index.entries.get(id);
    const carried = previous === undefined ? false : copyPrevious(prevDir!, genDir, name, own);
    if (carried === true) entries.set(id, previous!);
    const why = carried === true || carried === false ? cause : `${cause ? `${cause}; ` : ""}${carried}`;
    outcomes[at] = { name, how: carried === true ? "kept" : "none", ...(why !== undefined ? { cause: why } : {}) };
  };

  items.forEach(({ name, value }, at) => {
    const id = credentialId(name);
    if (value === undefined || !value.ok) return keep(at, name, id, value?.cause);
    const digest = digestOf(index.key, value.data);
    const previous = index.entries.get(id);
    if (previous !== undefined && previous.withKey === options.withKey && sameDigest(previous.digest, digest)) {
      const copied = copyPrevious(prevDir!, genDir, name, own);
      if (copied === true) {
        entries.set(id, previous);
        outcomes[at] = { name, how: "reused" };
        return;
      }
    }
    toSeal.push({ at, name, id, data: value.data, digest });
  });

  if (toSeal.length > 0) {
    try {
      tool = findSystemdCreds(options.env);
    } catch (e) {
      toolProblem = (e as Error).message;
    }
  }
  const parallel = Math.max(1, options.parallel ?? Math.min(4, availableParallelism()));
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < toSeal.length; i = next++) {
      const s = toSeal[i]!;
      let blob: Buffer | undefined;
      let cause = toolProblem;
      if (tool !== undefined) {
        try {
          blob = await sealCredential(tool, s.id, s.data, options.withKey, options.env ?? process.env);
        } catch (e) {
          cause = (e as Error).message;
        }
      }
      if (blob !== undefined) {
        try {
          writeNewFile(`${genDir}/${sealedEntry(s.name)}`, blob, own);
          entries.set(s.id, { digest: s.digest, withKey: options.withKey });
          outcomes[s.at] = { name: s.name, how: "sealed" };
          continue;
        } catch (e) {
          cause = `cannot write its sealed credential into the new generation: ${(e as Error).message}`;
        }
      }
      keep(s.at, s.name, s.id, `cannot seal it as encrypted credential ${s.id}: ${cause ?? "no reason given"}`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, toSeal.length) }, worker));

  const json = JSON.stringify({ version: 1, key: index.key.toString("base64"), entries: Object.fromEntries(entries) });
  const data = Buffer.from(json);
  try {
    writeNewFile(`${genDir}/${ENCRYPTED_ENTRY}/${INDEX_FILE}`, data, own);
  } finally {
    data.fill(0);
    index.key.fill(0);
  }
  return outcomes;
}

/** The live generation's blob for `name` into the new one: true, or why not. */
function copyPrevious(prevDir: string, genDir: string, name: string, own: Ownership): true | string {
  let previous;
  try {
    previous = readFileNoFollow(`${prevDir}/${sealedEntry(name)}`);
  } catch (e) {
    return `its previous sealed credential cannot be read: ${(e as Error).message}`;
  }
  try {
    writeNewFile(`${genDir}/${sealedEntry(name)}`, previous.data, own);
    return true;
  } catch (e) {
    return `cannot carry over its previous sealed credential: ${(e as Error).message}`;
  } finally {
    previous.data.fill(0);
  }
}

/**
 * `systemd-creds encrypt --name=<id> --with-key=<key> - -`: the plaintext on stdin (the only place
 * it goes), the base64 blob from stdout, bounded in size and time. Throws with systemd-creds' line.
 */
export function sealCredential(tool: string, id: string, plaintext: Uint8Array, withKey: WithKey, env: NodeJS.ProcessEnv = process.env): Promise<Buffer> {
  const bounds = { maxBytes: MAX_BLOB_BYTES, what: "encrypted credential", tooLarge: "more than systemd loads", timeoutMs: SEAL_TIMEOUT_MS };
  return new Promise((resolve, reject) => {
    const child = childProcess().execFile(
      tool,
      ["encrypt", `--name=${id}`, `--with-key=${withKey}`, "-", "-"],
      { encoding: "buffer", maxBuffer: MAX_BLOB_BYTES, timeout: SEAL_TIMEOUT_MS, env: systemdCredsEnv(env) },
      (error, stdout, stderr) => {
        if (error) return reject(systemdCredsFailure("encrypt", tool, Object.assign(error, { stdout, stderr }), bounds));
        if (stdout.length === 0 || !BASE64.test(stdout.toString("latin1"))) return reject(new Error("systemd-creds encrypt printed no base64 credential"));
        resolve(stdout);
      },
    );
    child.stdin?.on("error", () => {}); // a child that exits before reading says why on stderr
    child.stdin?.end(plaintext);
  });
}
