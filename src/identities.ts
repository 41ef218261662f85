import type { Stats } from "node:fs";
import { ReadRefused, TrustError, withReadSource, type ReadSource } from "./secure-fs.js";
import type SshPk from "sshpk";
import { rsaPrivateKey } from "./rsa-key.js";
import { isSealedIdentity, SealedIdentityError, unsealIdentity } from "./sealed-identity.js";
import { PluginAnswers, PluginIdentity } from "./age/plugin-identity.js";
import { type AgeIdentity, HybridIdentity, SshEd25519Identity, SshRsaIdentity, X25519Identity } from "./age/index.js";

export interface IdentityWarning {
  path: string;
  reason: string;
  /** True when the file was not used; false for one that was loaded but is not root's alone. */
  skipped: boolean;
}

class SkipFile extends Error {}

/** As Go age: far more than any key file (an age identity line is ~75 bytes, an RSA key a few KiB). */
const MAX_IDENTITY_FILE_BYTES = 16 * 1024 * 1024;

/** How identity files are read: through held directories (src/secure-fs.ts), trusting root alone. */
export type IdentitySource = ReadSource;

/**
 * Loads every identity file in order. Skips (with a warning via onWarning, `skipped: true`)
 * missing, empty, unreadable and passphrase-protected files, and files it
 * cannot parse — agenix does `test -r && test -s` per path. An age identity
 * file may hold several keys and comments. A file another user owns or may write, or below a
 * directory another user may change, is skipped (the key that opens every secret is never
 * taken from a place someone else controls). One that loads but that others may read gets one
 * warning (`skipped: false`) and is used.
 */
export async function loadIdentities(
  paths: readonly string[],
  onWarning: (w: IdentityWarning) => void,
  source?: IdentitySource,
  /** Whose files identities should be: root's on the machine, the user's for `agenixd --user`. */
  ownerUid = 0,
  /** Where age-plugin-<name> binaries are looked up (age.plugins), and only there. */
  pluginDirs: readonly string[] = [],
): Promise<AgeIdentity[]> {
  return withReadSource(source, (from) => loadFrom(paths, onWarning, from, ownerUid, pluginDirs));
}

async function loadFrom(paths: readonly string[], onWarning: (w: IdentityWarning) => void, source: IdentitySource, ownerUid: number, pluginDirs: readonly string[]): Promise<AgeIdentity[]> {
  const identities: AgeIdentity[] = [];
  const plugins = new Map<string, PluginAnswers>();
  const answersFor = (program: string): PluginAnswers => {
    let a = plugins.get(program);
    if (a === undefined) plugins.set(program, (a = new PluginAnswers()));
    return a;
  };
  for (const path of paths) {
    let file: IdentityFile | undefined;
    try {
      // A systemd encrypted credential (src/sealed-identity.ts): its plaintext never touches a disk.
      if (isSealedIdentity(path)) {
        file = readSealedIdentity(path, source);
        identities.push(...(await parseIdentityFile(file.contents, path, pluginDirs, answersFor)));
        continue;
      }
      file = readIdentityFile(path, source);
      identities.push(...(await parseIdentityFile(file.contents, path, pluginDirs, answersFor)));
      const exposure = describeExposure(file.info, ownerUid);
      if (exposure !== undefined) onWarning({ path, reason: exposure, skipped: false });
    } catch (err) {
      if (!(err instanceof SkipFile)) throw err;
      onWarning({ path, reason: err.message, skipped: true });
    } finally {
      file?.contents.fill(0);
    }
  }
  return identities;
}

interface IdentityFile {
  /** The whole file; the caller zeroes it. */
  readonly contents: Buffer;
  readonly info: Stats;
}

function readIdentityFile(path: string, source: IdentitySource): IdentityFile {
  try {
    // statFirst: a FIFO or a device is skipped without opening it (opening one can block or act);
    // the fstat after a non-blocking open catches a path swapped for one in between.
    const { data, stat } = source.dirs.readFileStat(path, source.trust, { maxBytes: MAX_IDENTITY_FILE_BYTES, maxWords: "16 MiB", statFirst: true });
    if (data.length === 0) throw new SkipFile("empty file");
    return { contents: data, info: stat };
  } catch (err) {
    if (err instanceof SkipFile) throw err;
    throw new SkipFile(describeRefusal(err, path));
  }
}

function describeRefusal(err: unknown, path: string): string {
  if (err instanceof ReadRefused) {
    if (err.kind === "not-regular") return err.what === "is not a regular file (a directory)" ? "is a directory, not a key file" : "is not a regular file";
    if (err.kind === "too-large") return "is larger than 16 MiB (limit 16 MiB), not a key file";
    return err.path === path ? `not used: ${err.what}` : `not used: ${err.message}`;
  }
  if (err instanceof TrustError) return `not used: ${err.message}`;
  return describeFsError(err);
}

/** A .cred file, trusted as any identity file (the walk, root's alone), then opened by systemd-creds. */
function readSealedIdentity(path: string, source: IdentitySource): IdentityFile {
  const sealed = readIdentityFile(path, source);
  let contents: Buffer;
  try {
    contents = unsealIdentity(path, sealed.contents);
  } catch (err) {
    if (err instanceof SealedIdentityError) throw new SkipFile(`sealed identity does not open: ${err.message}`);
    throw err;
  }
  if (contents.length === 0) throw new SkipFile("sealed identity is empty");
  return { contents, info: sealed.info };
}

/** Why a host key is readable, writable or owned by others than root, or undefined if it is not. */
function describeExposure(info: Stats, ownerUid = 0): string | undefined {
  const problems: string[] = [];
  const who = (groupBit: number, otherBit: number): string | undefined => {
    const group = (info.mode & groupBit) !== 0;
    const other = (info.mode & otherBit) !== 0;
    return group && other ? "group and others" : group ? "group" : other ? "others" : undefined;
  };
  const mode = (info.mode & 0o7777).toString(8).padStart(4, "0");
  const readers = who(0o040, 0o004);
  const writers = who(0o020, 0o002);
  if (readers !== undefined) problems.push(`readable by ${readers} (mode ${mode})`);
  if (writers !== undefined) problems.push(`writable by ${writers} (mode ${mode})`);
  if (info.uid !== ownerUid) problems.push(`owned by uid ${info.uid}, not ${ownerUid === 0 ? "root" : `uid ${ownerUid}`}`);
  return problems.length === 0 ? undefined : problems.join(", ");
}

function describeFsError(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case "ENOENT":
      return "file does not exist";
    case "ENOTDIR":
      return "unreadable: a parent of the path is not a directory";
    case "EACCES":
    case "EPERM":
      return "unreadable: permission denied";
    default:
      return `unreadable: ${code ?? "unknown error"}`;
  }
}

type AnswersFor = (program: string) => PluginAnswers;

function parseIdentityFile(contents: Buffer, path: string, pluginDirs: readonly string[], answersFor: AnswersFor): Promise<AgeIdentity[]> {
  // PEM armor ("-----BEGIN OPENSSH PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----", …)
  if (contents.includes("-----BEGIN ")) return parseSshKey(contents, path);
  return parseAgeIdentities(contents, path, pluginDirs, answersFor);
}

const LF = 0x0a;
const HASH = 0x23;
const PQ_PREFIX = Buffer.from("AGE-SECRET-KEY-PQ-1", "latin1");
const X25519_PREFIX = Buffer.from("AGE-SECRET-KEY-1", "latin1");
const PLUGIN_PREFIX = Buffer.from("AGE-PLUGIN-", "latin1");

/** What String.prototype.trim removes, among single bytes read as latin1. */
function isSpace(b: number): boolean {
  return (b >= 0x09 && b <= 0x0d) || b === 0x20 || b === 0xa0;
}

function trimmed(line: Buffer): Buffer {
  let start = 0;
  let end = line.length;
  while (start < end && isSpace(line[start]!)) start++;
  while (end > start && isSpace(line[end - 1]!)) end--;
  return line.subarray(start, end);
}

function startsWith(line: Buffer, prefix: Buffer): boolean {
  return line.length >= prefix.length && prefix.equals(line.subarray(0, prefix.length));
}

/**
 * An age identity file: one AGE-SECRET-KEY-… per line, '#' comments and blank lines allowed.
 * Read as bytes, line by line, so that an X25519 key never becomes a JS string.
 */
async function parseAgeIdentities(contents: Buffer, path: string, pluginDirs: readonly string[], answersFor: AnswersFor): Promise<AgeIdentity[]> {
  const identities: AgeIdentity[] = [];
  let lineNumber = 0;
  for (let start = 0; start <= contents.length; ) {
    const lf = contents.indexOf(LF, start);
    const end = lf < 0 ? contents.length : lf;
    const line = trimmed(contents.subarray(start, end));
    start = end + 1;
    lineNumber++;
    if (line.length === 0 || line[0] === HASH) continue;
    const where = `line ${lineNumber}`;
    try {
      // typage's Decrypter, which holds ML-KEM keys, takes its identity only as a string.
      if (startsWith(line, PQ_PREFIX)) identities.push(await HybridIdentity.fromString(line.toString("latin1"), path));
      else if (startsWith(line, X25519_PREFIX)) identities.push(X25519Identity.fromBytes(line, path));
      else if (startsWith(line, PLUGIN_PREFIX)) identities.push(PluginIdentity.fromBytes(line, path, pluginDirs, answersFor));
      else throw new SkipFile(`${where} is not an age identity or SSH private key`);
    } catch (err) {
      if (err instanceof SkipFile) throw err;
      // The message comes from our own parsers and never quotes the key.
      throw new SkipFile(`${where}: ${err instanceof Error ? err.message : "invalid identity"}`);
    }
  }
  if (identities.length === 0) throw new SkipFile("contains no identities");
  return identities;
}

let sshpkModule: Promise<typeof SshPk> | undefined;
function loadSshpk(): Promise<typeof SshPk> {
  // sshpk is slow to load; only hosts with SSH identity files pay for it.
  sshpkModule ??= import("sshpk").then((m) => m.default);
  return sshpkModule;
}

async function parseSshKey(contents: Buffer, path: string): Promise<AgeIdentity[]> {
  const sshpk = await loadSshpk();
  let key: SshPk.PrivateKey;
  try {
    // sshpk takes the Buffer but parses PEM as text: it turns the whole file into one string
    // (sshpk/lib/formats/pem.js), which cannot be zeroed. The key parts it returns are Buffers,
    // zeroed below. Only a parser of our own would avoid that string.
    key = sshpk.parsePrivateKey(contents, "auto", { filename: path });
  } catch (err) {
    if (err instanceof Error && err.name === "KeyEncryptedError") {
      throw new SkipFile("passphrase-protected; agenixd cannot use it");
    }
    throw new SkipFile("cannot parse as an SSH private key");
  }
  try {
    const sshWirePublicKey = key.toPublic().toBuffer("rfc4253", {});
    switch (key.type) {
      case "ed25519": {
        const seed = key.parts.find((p) => p.name === "k")?.data;
        if (seed?.length !== 32) throw new SkipFile("malformed Ed25519 private key");
        return [new SshEd25519Identity(path, seed, sshWirePublicKey)];
      }
      case "rsa": {
        const part = (name: string) => {
          const data = key.parts.find((p) => p.name === name)?.data;
          if (!data) throw new SkipFile(`malformed RSA private key (no ${name})`);
          return data;
        };
        const rsa = rsaPrivateKey({ n: part("n"), e: part("e"), d: part("d"), p: part("p"), q: part("q"), iqmp: part("iqmp") });
        return [new SshRsaIdentity(path, rsa, sshWirePublicKey)];
      }
      default:
        throw new SkipFile(`unsupported SSH key type "${key.type}" (age supports ssh-ed25519 and ssh-rsa)`);
    }
  } finally {
    // Best effort: sshpk keeps key parts in its own Buffers.
    for (const part of key.parts) part.data.fill(0);
  }
}
