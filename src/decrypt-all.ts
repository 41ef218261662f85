// Step 2: decrypt every selected secret into memory before anything on disk changes.
import { type Stats, closeSync, constants, fstatSync, openSync, readSync, statSync } from "node:fs";
import { type AgeIdentity, type AgeLimits, DEFAULT_LIMITS, decryptAge, formatBytes } from "./age/index.js";
import { decodeArmor, looksArmored } from "./age/armor.js";
import { parseHeader } from "./age/header.js";
import { PluginIdentity } from "./age/plugin-identity.js";
import type { PluginLimits } from "./age/plugin-session.js";
import { runPlugins } from "./age/plugin-unwrap.js";
import type { Stanza } from "./age/stanza.js";
import type { SecretSpec } from "./manifest.js";

/** What a plugin said (escaped), for the log. */
export type PluginMessageHandler = (plugin: string, message: string) => void;

export type Decrypted =
  | { readonly ok: true; readonly secret: SecretSpec; readonly plaintext: Buffer }
  | { readonly ok: false; readonly secret: SecretSpec; readonly cause: string };

/**
 * One secret at a time, reading synchronously: the work is CPU-bound crypto on one thread and a
 * store file is a page-cache hit, so overlapping reads buys nothing, while a promise-based read
 * costs more than the decryption itself (measured by bench/profile).
 * Each file is bounded by `limits` (src/age/limits.ts, docs/limits.md): one over them fails alone.
 */
export async function decryptAll(
  secrets: readonly SecretSpec[],
  identities: readonly AgeIdentity[],
  limits: AgeLimits = DEFAULT_LIMITS,
  onPluginMessage: PluginMessageHandler = () => {},
  pluginLimits?: PluginLimits,
): Promise<Decrypted[]> {
  const results: Decrypted[] = [];
  if (!identities.some((id) => id instanceof PluginIdentity)) {
    for (const secret of secrets) results.push(await decryptOne(secret, read(secret, limits), identities, limits));
    return results;
  }
  // Age plugins (src/age/plugin-unwrap.ts): every file is read and its header parsed first, so that
  // each plugin runs once for all of them.
  const files = secrets.map((secret) => read(secret, limits));
  await runPlugins(identities, files.map(headerStanzas(limits)), onPluginMessage, pluginLimits);
  try {
    for (const [i, secret] of secrets.entries()) {
      for (const id of identities) if (id instanceof PluginIdentity) id.answers.current = i;
      results.push(await decryptOne(secret, files[i]!, identities, limits));
    }
  } finally {
    for (const id of identities) if (id instanceof PluginIdentity) id.answers.clear();
  }
  return results;
}

function read(secret: SecretSpec, limits: AgeLimits): Buffer | string {
  try {
    return readCiphertext(secret.file, limits.maxFileBytes);
  } catch (e) {
    return e instanceof Refused ? e.message : describeReadError(e);
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

async function decryptOne(secret: SecretSpec, ciphertext: Buffer | string, identities: readonly AgeIdentity[], limits: AgeLimits): Promise<Decrypted> {
  if (typeof ciphertext === "string") return { ok: false, secret, cause: ciphertext };
  if (identities.length === 0) return { ok: false, secret, cause: "no usable identity was loaded from identityPaths" };
  try {
    return { ok: true, secret, plaintext: await decryptAge(ciphertext, identities, limits) };
  } catch (e) {
    return { ok: false, secret, cause: (e as Error).message };
  }
}

class Refused extends Error {}

// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
// O_NOCTTY: agenixd is a session leader without a terminal; opening a tty must not give it one.
// No O_NOFOLLOW: a `file` given as a string may well be a symlink (environment.etc links /etc files
// into the store); following it to a regular file is fine, reading whatever is not one is not.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * Reads an encrypted file that must be a regular file of at most `maxBytes`. A FIFO would block
 * the activation forever and a device is read without end (/dev/zero grew agenixd to 17 GB): both
 * are refused from the fstat of the open file, before a byte is read. The same syscalls as
 * readFileSync (open, fstat, read, close) on the hot path of every secret; so a device is opened
 * before it is refused (docs/limits.md says why that is accepted).
 */
function readCiphertext(path: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    throw explainOpenFailure(path, e);
  }
  try {
    const size = checkRegular(fstatSync(fd), maxBytes);
    const bytes = Buffer.allocUnsafe(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, bytes, read, size - read, null);
      if (n === 0) break; // shrunk since the fstat: what is there is decrypted (and fails its MAC)
      read += n;
    }
    return read === size ? bytes : bytes.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

/**
 * A device without a driver or a socket cannot be opened (ENXIO), nor a device on a `nodev` mount
 * (EACCES): said as what the path is when it is not a regular file. Only failures stat again.
 */
function explainOpenFailure(path: string, e: unknown): unknown {
  let info: Stats | undefined;
  try {
    info = statSync(path, { throwIfNoEntry: false });
  } catch {
    return e;
  }
  return info !== undefined && !info.isFile() ? new Refused(`encrypted file is not a regular file (${fileKind(info)})`) : e;
}

function checkRegular(info: Stats, maxBytes: number): number {
  if (!info.isFile()) throw new Refused(`encrypted file is not a regular file (${fileKind(info)})`);
  if (info.size > maxBytes) throw new Refused(`encrypted file is larger than ${formatBytes(maxBytes)} (limit ${formatBytes(maxBytes)})`);
  return info.size;
}

function fileKind(info: Stats): string {
  if (info.isDirectory()) return "a directory";
  if (info.isFIFO()) return "a FIFO";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  if (info.isSocket()) return "a socket";
  return "not a file";
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
