import { closeSync, constants, fstatSync, openSync, readFileSync, statSync, type Stats } from "node:fs";
import type SshPk from "sshpk";
import { rsaPrivateKey } from "./rsa-key.js";
import { type AgeIdentity, HybridIdentity, SshEd25519Identity, SshRsaIdentity, X25519Identity } from "./age/index.js";

export interface IdentityWarning {
  path: string;
  reason: string;
}

class SkipFile extends Error {}

/**
 * Loads every identity file in order. Skips (with a warning via onWarning)
 * missing, empty, unreadable and passphrase-protected files, and files it
 * cannot parse — agenix does `test -r && test -s` per path. An age identity
 * file may hold several keys and comments.
 */
export async function loadIdentities(
  paths: readonly string[],
  onWarning: (w: IdentityWarning) => void,
): Promise<AgeIdentity[]> {
  const identities: AgeIdentity[] = [];
  for (const path of paths) {
    let contents: Buffer | undefined;
    try {
      contents = readIdentityFile(path);
      identities.push(...(await parseIdentityFile(contents, path)));
    } catch (err) {
      if (!(err instanceof SkipFile)) throw err;
      onWarning({ path, reason: err.message });
    } finally {
      contents?.fill(0);
    }
  }
  return identities;
}

function readIdentityFile(path: string): Buffer {
  let fd: number | undefined;
  try {
    // A FIFO or a device must be skipped without opening it (opening one can block or act); the
    // fstat after a non-blocking open catches a path swapped for one in between.
    checkRegularFile(statSync(path));
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    checkRegularFile(fstatSync(fd));
    const contents = readFileSync(fd);
    if (contents.length === 0) throw new SkipFile("empty file");
    return contents;
  } catch (err) {
    if (err instanceof SkipFile) throw err;
    throw new SkipFile(describeFsError(err));
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function checkRegularFile(info: Stats): void {
  if (!info.isFile()) throw new SkipFile(info.isDirectory() ? "is a directory, not a key file" : "is not a regular file");
  if (info.size === 0) throw new SkipFile("empty file");
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

function parseIdentityFile(contents: Buffer, path: string): Promise<AgeIdentity[]> {
  // PEM armor ("-----BEGIN OPENSSH PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----", …)
  if (contents.includes("-----BEGIN ")) return parseSshKey(contents, path);
  return parseAgeIdentities(contents, path);
}

/** An age identity file: one AGE-SECRET-KEY-… per line, '#' comments and blank lines allowed. */
async function parseAgeIdentities(contents: Buffer, path: string): Promise<AgeIdentity[]> {
  const lines = contents.toString("latin1").split("\n");
  const identities: AgeIdentity[] = [];
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const where = `line ${index + 1}`;
    try {
      if (line.startsWith("AGE-SECRET-KEY-PQ-1")) identities.push(await HybridIdentity.fromString(line, path));
      else if (line.startsWith("AGE-SECRET-KEY-1")) identities.push(X25519Identity.fromString(line, path));
      else if (line.startsWith("AGE-PLUGIN-")) throw new SkipFile(`${where}: age plugin identities are not supported`);
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
