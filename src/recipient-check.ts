// Whether an .age file is encrypted to a host, decided from public keys only (no private key).
//
// An ssh-ed25519 or ssh-rsa stanza names its recipient: its first argument is the 4-byte tag
// SHA-256(SSH wire public key)[:4] (src/age/ssh-key-tag.ts). X25519 and mlkem768x25519 stanzas
// carry only an ephemeral share, so nobody without the private key can say whom they are for: such
// a file is "uncheckable" unless an SSH stanza already matched. The header is read with agenixd's
// own bounded parser (src/age/header.ts), the same one activation uses.
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { decodeArmor, looksArmored } from "./age/armor.js";
import { decodeBase64NoPad } from "./age/base64.js";
import { parseHeader } from "./age/header.js";
import { DEFAULT_LIMITS, formatBytes } from "./age/limits.js";
import { sshKeyTag } from "./age/ssh-key-tag.js";

export type RecipientKind = "ssh-ed25519" | "ssh-rsa" | "X25519" | "mlkem768x25519";

export interface HostRecipient {
  readonly kind: RecipientKind;
  /** For SSH keys: the stanza tag (unpadded base64 of 4 bytes). */
  readonly tag?: string;
  /** The key as given, cut to its type and key (no comment), for messages. */
  readonly text: string;
}

export class RecipientError extends Error {}

/** Longer than any public key line (a 16384-bit RSA key is ~2.8 KB of base64). */
const MAX_RECIPIENT_CHARS = 16 * 1024;

/**
 * Parses one public key: an OpenSSH line ("ssh-ed25519 AAAA… comment", "ssh-rsa AAAA…"),
 * an age X25519 recipient ("age1…") or a hybrid one ("age1pq1…").
 */
export function parseRecipient(line: string): HostRecipient {
  const text = line.trim();
  if (text.length === 0) throw new RecipientError("empty public key");
  if (text.length > MAX_RECIPIENT_CHARS) throw new RecipientError(`public key is longer than ${MAX_RECIPIENT_CHARS} characters`);
  const [type, key] = text.split(/\s+/);
  if (type === "ssh-ed25519" || type === "ssh-rsa") {
    if (key === undefined) throw new RecipientError(`${type} public key has no key data`);
    let wire: Buffer;
    try {
      wire = Buffer.from(decodeBase64NoPad(key.replace(/=+$/, ""), "public key"));
    } catch {
      throw new RecipientError(`${type} public key is not valid base64`);
    }
    // The wire blob starts with its own type as an SSH string: a key pasted under the wrong name is refused.
    const len = wire.length >= 4 ? wire.readUInt32BE(0) : -1;
    if (len !== type.length || wire.subarray(4, 4 + len).toString("latin1") !== type) {
      throw new RecipientError(`${type} public key data is not an ${type} key`);
    }
    if (type === "ssh-ed25519" && wire.length !== 4 + 11 + 4 + 32) throw new RecipientError("ssh-ed25519 public key has the wrong length");
    return { kind: type, tag: sshKeyTag(wire), text: `${type} ${key}` };
  }
  if (/^age1pq1[02-9ac-hj-np-z]+$/.test(type!)) return { kind: "mlkem768x25519", text: type! };
  if (/^age1[02-9ac-hj-np-z]{58}$/.test(type!)) return { kind: "X25519", text: type! };
  if (/^age1[a-z0-9]+1/.test(type!)) throw new RecipientError(`${type!.slice(0, 20)}…: age plugin recipients cannot be checked`);
  throw new RecipientError(`not an ssh-ed25519, ssh-rsa or age1… public key: ${JSON.stringify(type!.slice(0, 40))}`);
}

export type CheckStatus = "ok" | "missing" | "uncheckable" | "invalid";

export interface FileCheck {
  readonly name: string;
  readonly file: string;
  readonly status: CheckStatus;
  /** One line: which key matched, or why none could. */
  readonly reason: string;
  /** The stanza types of the header, in order (empty for an invalid file). */
  readonly stanzas: readonly string[];
}

const UNATTRIBUTABLE = ["X25519", "mlkem768x25519"];

/** Checks an age file's bytes against the host's public keys. */
export function checkHeader(name: string, file: string, bytes: Uint8Array, recipients: readonly HostRecipient[]): FileCheck {
  let stanzas;
  try {
    const binary = looksArmored(bytes) ? decodeArmor(bytes) : bytes;
    stanzas = parseHeader(binary, DEFAULT_LIMITS).stanzas;
  } catch (e) {
    return { name, file, status: "invalid", reason: `not a valid age file: ${(e as Error).message}`, stanzas: [] };
  }
  const types = stanzas.map((s) => s.args[0]!.slice(0, 40));
  for (const stanza of stanzas) {
    const [type, tag] = stanza.args;
    const match = recipients.find((r) => r.tag !== undefined && r.kind === type && r.tag === tag);
    if (match) return { name, file, status: "ok", reason: `encrypted to ${match.text.slice(0, 60)}${match.text.length > 60 ? "…" : ""}`, stanzas: types };
  }
  const opaque = types.filter((t) => UNATTRIBUTABLE.includes(t));
  if (opaque.length > 0) {
    return {
      name,
      file,
      status: "uncheckable",
      reason: `no SSH stanza is for these keys, and its ${opaque.filter((t, i) => opaque.indexOf(t) === i).join("/")} stanzas cannot be attributed without the private key`,
      stanzas: types,
    };
  }
  const summary = types.length === 0 ? "no recipients" : describeTypes(types);
  return { name, file, status: "missing", reason: `not encrypted to any of the ${recipients.length} host key(s) (file is for: ${summary})`, stanzas: types };
}

/** "2 ssh-ed25519, 1 X25519": a linear scan, as src/age/decrypt.ts (no map keyed by the file's text). */
function describeTypes(types: readonly string[]): string {
  const counts: [string, number][] = [];
  for (const t of types) {
    const entry = counts.find(([type]) => type === t);
    if (entry) entry[1]++;
    else if (counts.length < 8) counts.push([t, 1]);
  }
  return counts.map(([t, n]) => `${n} ${t}`).join(", ");
}

/** Reads and checks one file; a file that cannot be read is "invalid". Reads at most the file limit. */
export function checkFile(name: string, path: string, recipients: readonly HostRecipient[]): FileCheck {
  let bytes: Buffer;
  try {
    bytes = readBounded(path, DEFAULT_LIMITS.maxFileBytes);
  } catch (e) {
    return { name, file: path, status: "invalid", reason: (e as Error).message, stanzas: [] };
  }
  return checkHeader(name, path, bytes, recipients);
}

function readBounded(path: string, limit: number): Buffer {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === "ENOENT" ? "file does not exist" : `cannot open: ${code ?? "error"}`);
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw new Error("is not a regular file");
    if (info.size > limit) throw new Error(`file is larger than ${formatBytes(limit)} (limit ${formatBytes(limit)})`);
    const buf = Buffer.alloc(info.size);
    let read = 0;
    while (read < buf.length) {
      const n = readSync(fd, buf, read, buf.length - read, null);
      if (n === 0) break;
      read += n;
    }
    return buf.subarray(0, read);
  } finally {
    closeSync(fd);
  }
}

export interface CheckSummary {
  readonly ok: boolean;
  readonly strict: boolean;
  readonly recipients: readonly string[];
  readonly files: readonly FileCheck[];
}

/** 0: every file is for the host (uncheckable ones too, unless strict); 1: some file is not. */
export function summarize(files: readonly FileCheck[], recipients: readonly HostRecipient[], strict: boolean): CheckSummary {
  const ok = files.every((f) => f.status === "ok" || (f.status === "uncheckable" && !strict));
  return { ok, strict, recipients: recipients.map((r) => r.text), files };
}

/** The text report: one line per file that is not ok, then a count. */
export function renderCheck(summary: CheckSummary): string {
  const lines: string[] = [];
  for (const f of summary.files) {
    const label = f.name === f.file ? f.file : `${f.name} (${f.file})`;
    if (f.status === "ok") lines.push(`ok: ${label}: ${f.reason}`);
    else if (f.status === "uncheckable") lines.push(`${summary.strict ? "error" : "warning"}: ${label}: not checkable: ${f.reason}`);
    else lines.push(`error: ${label}: ${f.reason}`);
  }
  const count = (s: CheckStatus) => summary.files.filter((f) => f.status === s).length;
  lines.push(
    `${summary.files.length} file(s): ${count("ok")} ok, ${count("missing")} not for this host, ${count("uncheckable")} not checkable, ${count("invalid")} invalid`,
  );
  return `${lines.join("\n")}\n`;
}
