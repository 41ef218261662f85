import { createHmac, timingSafeEqual } from "node:crypto";
import { decodeBase64NoPad } from "./base64.js";
import { AgeDecryptError } from "./errors.js";
import { hkdfSha256 } from "./kdf.js";
import { type AgeLimits, formatBytes } from "./limits.js";
import type { Stanza } from "./stanza.js";

const VERSION_LINE = "age-encryption.org/v1";
const STANZA_PREFIX = "-> ";
const MAC_PREFIX = "--- ";
const BODY_LINE_COLUMNS = 64;
const BODY_LINE_BYTES = 48;
const NEWLINE = 0x0a;
const NON_PRINTABLE = /[^\x20-\x7e]/;

export interface ParsedHeader {
  readonly stanzas: readonly Stanza[];
  /** The header bytes the MAC covers: everything up to and including the "---". */
  readonly macInput: Uint8Array;
  readonly mac: Uint8Array;
  /** Offset of the first byte after the header (the payload nonce). */
  readonly payloadOffset: number;
}

/** Reads '\n'-terminated lines of printable ASCII out of the binary file, up to `limit` bytes. */
class HeaderLines {
  offset = 0;
  readonly #file: Uint8Array;
  /** The part of the file a header may occupy: no line search ever looks past it. */
  readonly #window: Uint8Array;

  constructor(file: Uint8Array, readonly limit: number) {
    this.#file = file;
    this.#window = file.subarray(0, limit);
  }

  /** Returns the next line (without '\n') and its start offset. */
  next(): { text: string; start: number } {
    const start = this.offset;
    const end = this.#window.indexOf(NEWLINE, start);
    if (end < 0) {
      if (this.#file.length > this.limit) throw headerTooLong(this.limit);
      throw new AgeDecryptError("invalid header: truncated (missing end of line)");
    }
    // latin1 maps every byte to the character of the same code, so the test sees the raw bytes.
    const text = Buffer.from(this.#file.buffer, this.#file.byteOffset + start, end - start).toString("latin1");
    if (NON_PRINTABLE.test(text)) throw new AgeDecryptError("invalid header: non-printable byte in header");
    this.offset = end + 1;
    return { text, start };
  }
}

function headerTooLong(limit: number): AgeDecryptError {
  return new AgeDecryptError(`header is longer than ${formatBytes(limit)} (limit ${formatBytes(limit)})`);
}

/**
 * Parses the textual age header (C2SP age.md, "Header"). Does not check the MAC.
 * Linear in the header's length, which is at most `limits.maxHeaderBytes`; at most
 * `limits.maxStanzas` stanzas.
 */
export function parseHeader(file: Uint8Array, limits: Pick<AgeLimits, "maxHeaderBytes" | "maxStanzas">): ParsedHeader {
  const lines = new HeaderLines(file, limits.maxHeaderBytes);
  if (!startsWithAscii(file, "age-encryption.org/")) throw new AgeDecryptError("not an age file");
  const version = lines.next().text;
  if (version !== VERSION_LINE) throw new AgeDecryptError(`unsupported age version "${version.slice(0, 40)}"`);

  const stanzas: Stanza[] = [];
  for (;;) {
    const { text, start } = lines.next();
    if (text.startsWith(STANZA_PREFIX)) {
      if (stanzas.length === limits.maxStanzas) {
        throw new AgeDecryptError(`header has more than ${limits.maxStanzas} stanzas (limit ${limits.maxStanzas})`);
      }
      stanzas.push(parseStanza(text, lines));
      continue;
    }
    if (text.startsWith(MAC_PREFIX)) {
      const mac = decodeBase64NoPad(text.slice(MAC_PREFIX.length), "header MAC");
      if (mac.length !== 32) throw new AgeDecryptError("invalid header: MAC has the wrong length");
      return { stanzas, macInput: file.subarray(0, start + MAC_PREFIX.length - 1), mac, payloadOffset: lines.offset };
    }
    throw new AgeDecryptError("invalid header: expected a stanza or the MAC line");
  }
}

function parseStanza(firstLine: string, lines: HeaderLines): Stanza {
  const args = firstLine.slice(STANZA_PREFIX.length).split(" ");
  if (args.some((a) => a.length === 0)) throw new AgeDecryptError("invalid header: empty stanza argument");
  const chunks: Buffer[] = [];
  for (;;) {
    const line = lines.next().text;
    if (line.length > BODY_LINE_COLUMNS) throw new AgeDecryptError("invalid header: stanza body line too long");
    const chunk = decodeBase64NoPad(line, "stanza body");
    chunks.push(chunk);
    // A full line means more follows; the body always ends with a short (possibly empty) line.
    if (chunk.length < BODY_LINE_BYTES) break;
  }
  return { args, body: Buffer.concat(chunks) };
}

/** Checks the header MAC: HMAC-SHA256(HKDF(fileKey, "", "header"), header up to "---"). */
export function verifyHeaderMac(fileKey: Uint8Array, header: ParsedHeader): void {
  const macKey = hkdfSha256(fileKey, new Uint8Array(0), "header");
  const expected = createHmac("sha256", macKey).update(header.macInput).digest();
  macKey.fill(0);
  if (!timingSafeEqual(expected, header.mac)) {
    throw new AgeDecryptError("header MAC mismatch (corrupt or tampered file)");
  }
}

function startsWithAscii(bytes: Uint8Array, prefix: string): boolean {
  if (bytes.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix.charCodeAt(i)) return false;
  return true;
}
