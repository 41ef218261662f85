// Step 2: decrypt every selected secret into memory before anything on disk changes.
import { type AgeIdentity, type AgeLimits, DEFAULT_LIMITS, IdentityNotReadyError, decryptAge, formatBytes } from "./age/index.js";
import { decodeArmor, looksArmored } from "./age/armor.js";
import { parseHeader } from "./age/header.js";
import { PluginIdentity } from "./age/plugin-identity.js";
import type { PluginLimits } from "./age/plugin-session.js";
import { runPlugins, type PluginSocket } from "./age/plugin-unwrap.js";
import type { Stanza } from "./age/stanza.js";
import type { SecretSpec } from "./manifest.js";
import { ReadRefused, TrustError, withReadSource, type ReadSource } from "./secure-fs.js";

/** What a plugin said (escaped), for the log. */
export type PluginMessageHandler = (plugin: string, message: string) => void;

/** How age plugins run (src/age/plugin-unwrap.ts): what they say goes to onMessage. */
export interface PluginOptions {
  readonly onMessage?: PluginMessageHandler;
  readonly limits?: PluginLimits;
  /** Plugins that are not run while a service's socket is missing (the manifest's pluginSockets). */
  readonly sockets?: readonly PluginSocket[];
}

/**
 * Why a secret failed. `waitsFor`: it was not opened only because a plugin waits for that unit
 * (src/age/plugin-unwrap.ts), so it is deferred rather than failed (docs/plugins.md).
 */
export interface Failed {
  readonly ok: false;
  readonly secret: SecretSpec;
  readonly cause: string;
  readonly waitsFor?: string;
}

export type Decrypted = { readonly ok: true; readonly secret: SecretSpec; readonly plaintext: Buffer } | Failed;

/** What opening one file gave: `value`, or why it failed. */
export type Opened<T> = { readonly ok: true; readonly secret: SecretSpec; readonly value: T } | Failed;

/** Opens one file with the identities: decryptAge (the plaintext), or unlockHeader (nothing: the check). */
export type Open<T> = (file: Uint8Array, identities: readonly AgeIdentity[], limits: AgeLimits) => Promise<T>;

/**
 * One secret at a time, reading synchronously: the work is CPU-bound crypto on one thread and a
 * store file is a page-cache hit, so overlapping reads buys nothing, while a promise-based read
 * costs more than the decryption itself (measured by bench/profile).
 * Each file is bounded by `limits` (src/age/limits.ts, docs/limits.md): one over them fails alone.
 * Without `source`, the files are read through a Dirs of its own, trusting root (the process's uid).
 */
export async function decryptAll(
  secrets: readonly SecretSpec[],
  identities: readonly AgeIdentity[],
  limits: AgeLimits = DEFAULT_LIMITS,
  source?: CiphertextSource,
  plugins: PluginOptions = {},
): Promise<Decrypted[]> {
  const opened = await openAll(secrets, identities, decryptAge, limits, source, plugins);
  return opened.map((o) => (o.ok ? { ok: true, secret: o.secret, plaintext: o.value } : o));
}

/** decryptAll's reading, plugins and failure isolation, with `open` doing what is done to each file. */
export async function openAll<T>(
  secrets: readonly SecretSpec[],
  identities: readonly AgeIdentity[],
  open: Open<T>,
  limits: AgeLimits = DEFAULT_LIMITS,
  source?: CiphertextSource,
  plugins: PluginOptions = {},
): Promise<Opened<T>[]> {
  return withReadSource(source, async (from) => {
    const results: Opened<T>[] = [];
    if (!identities.some((id) => id instanceof PluginIdentity)) {
      for (const secret of secrets) results.push(await openOne(secret, read(secret, limits, from), identities, open, limits));
      return results;
    }
    // Age plugins (src/age/plugin-unwrap.ts): every file is read and its header parsed first, so that
    // each plugin runs once for all of them.
    const files = secrets.map((secret) => read(secret, limits, from));
    await runPlugins(identities, files.map(headerStanzas(limits)), plugins.onMessage ?? (() => {}), plugins.limits, plugins.sockets);
    try {
      for (const [i, secret] of secrets.entries()) {
        for (const id of identities) if (id instanceof PluginIdentity) id.answers.current = i;
        results.push(await openOne(secret, files[i]!, identities, open, limits));
      }
    } finally {
      for (const id of identities) if (id instanceof PluginIdentity) id.answers.clear();
    }
    return results;
  });
}

/** The file's bytes, or why it cannot be read. */
function read(secret: SecretSpec, limits: AgeLimits, source: CiphertextSource): Buffer | string {
  try {
    return readCiphertext(secret.file, limits.maxFileBytes, source);
  } catch (e) {
    return describeRefusal(e);
  }
}

/** A file's stanzas for the plugins; undefined when it cannot be read or parsed (decryptAge says why). */
function headerStanzas(limits: AgeLimits): (file: Buffer | string) => readonly Stanza[] | undefined {
  return (file) => {
    if (typeof file === "string") return undefined;
    try {
      return parseHeader(looksArmored(file) ? decodeArmor(file) : file, limits).stanzas;
    } catch {
      return undefined;
    }
  };
}

async function openOne<T>(secret: SecretSpec, ciphertext: Buffer | string, identities: readonly AgeIdentity[], open: Open<T>, limits: AgeLimits): Promise<Opened<T>> {
  if (typeof ciphertext === "string") return { ok: false, secret, cause: ciphertext };
  if (identities.length === 0) return { ok: false, secret, cause: "no usable identity was loaded from identityPaths" };
  try {
    return { ok: true, secret, value: await open(ciphertext, identities, limits) };
  } catch (e) {
    if (e instanceof IdentityNotReadyError) return { ok: false, secret, cause: e.message, waitsFor: e.waitsFor };
    return { ok: false, secret, cause: (e as Error).message };
  }
}

/**
 * How a secret's `file` is read: through `dirs` (src/secure-fs.ts), so that the file and every
 * directory above it are root's alone. age binds no ciphertext to a name: a user who could write
 * their own secret's `.age` file could put another secret's (world-readable) ciphertext there
 * and receive it decrypted as theirs. The walk refuses such a file before it is read.
 */
export type CiphertextSource = ReadSource;

/**
 * Reads an encrypted file that must be a regular file of at most `maxBytes`. A FIFO would block
 * the activation forever and a device is read without end (/dev/zero grew agenixd to 17 GB): both
 * are refused from the fstat of the open file (O_NONBLOCK), before a byte is read.
 */
function readCiphertext(path: string, maxBytes: number, source: CiphertextSource): Buffer {
  return source.dirs.readFile(path, source.trust, { maxBytes, maxWords: formatBytes(maxBytes) });
}

function describeRefusal(e: unknown): string {
  if (e instanceof ReadRefused) return e.kind === "untrusted" ? `refusing to read the encrypted file: ${e.message}` : `encrypted file ${e.what}`;
  if (e instanceof TrustError) return `refusing to read the encrypted file: ${e.message}`;
  return describeReadError(e);
}

function describeReadError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENOENT":
      return "encrypted file does not exist";
    case "ENOTDIR":
      return "encrypted file does not exist (a parent of its path is not a directory)";
    case "EACCES":
    case "EPERM":
      return "encrypted file cannot be read: permission denied";
    case "ELOOP":
      return "encrypted file cannot be read: too many levels of symbolic links";
    case "ENAMETOOLONG":
      return "encrypted file cannot be read: its path is too long";
    case "EIO":
      return "encrypted file cannot be read: input/output error";
    default:
      return `cannot read encrypted file (${code ?? String(e)})`;
  }
}
