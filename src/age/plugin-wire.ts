// The stanza framing of the age plugin IPC (C2SP age-plugin.md, "IPC protocol"): the age v1
// header's stanza text, "-> TAG ARGS…\n" then the body in base64 lines of 64 columns, ending with
// a short (possibly empty) line. The reader is fed bytes as the plugin writes them and is bounded
// like an age header: printable ASCII only, at most `maxBytes` in all.
import { decodeBase64NoPad, encodeBase64NoPad } from "./base64.js";
import type { Stanza } from "./stanza.js";

const BODY_COLUMNS = 64;
const BODY_LINE_BYTES = 48;
const LF = 0x0a;
const NON_PRINTABLE = /[^\x20-\x7e]/;

export class PluginProtocolError extends Error {}

/** One stanza as text; the body is base64 in 64-column lines, always ending with a short line. */
export function encodeStanza(args: readonly string[], body: Uint8Array = new Uint8Array(0)): string {
  const b64 = encodeBase64NoPad(body);
  let text = `-> ${args.join(" ")}\n`;
  for (let i = 0; i <= b64.length; i += BODY_COLUMNS) text += `${b64.slice(i, i + BODY_COLUMNS)}\n`;
  return text;
}

/** Reads stanzas out of a byte stream; `push` throws PluginProtocolError on the first bad byte. */
export class StanzaReader {
  readonly #maxBytes: number;
  #total = 0;
  #pending: Buffer = Buffer.alloc(0);
  #args: string[] | undefined;
  #body: Buffer[] = [];
  readonly #ready: Stanza[] = [];

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Takes bytes the plugin wrote; returns the stanzas they complete. */
  push(chunk: Buffer): Stanza[] {
    this.#total += chunk.length;
    if (this.#total > this.#maxBytes) throw new PluginProtocolError(`wrote more than ${this.#maxBytes} bytes`);
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    let start = 0;
    for (;;) {
      const lf = this.#pending.indexOf(LF, start);
      if (lf < 0) break;
      this.#line(this.#pending.toString("latin1", start, lf));
      start = lf + 1;
    }
    this.#pending = this.#pending.subarray(start);
    return this.#ready.splice(0);
  }

  #line(text: string): void {
    if (NON_PRINTABLE.test(text)) throw new PluginProtocolError("wrote a non-printable byte");
    if (this.#args === undefined) {
      if (!text.startsWith("-> ")) throw new PluginProtocolError("wrote a line that is not a stanza");
      const args = text.slice(3).split(" ");
      if (args.some((a) => a.length === 0)) throw new PluginProtocolError("wrote a stanza with an empty argument");
      this.#args = args;
      return;
    }
    if (text.length > BODY_COLUMNS) throw new PluginProtocolError("wrote a stanza body line longer than 64 columns");
    let chunk: Buffer;
    try {
      chunk = decodeBase64NoPad(text, "stanza body");
    } catch {
      throw new PluginProtocolError("wrote a stanza body that is not canonical unpadded base64");
    }
    this.#body.push(chunk);
    if (chunk.length < BODY_LINE_BYTES) {
      this.#ready.push({ args: this.#args, body: Buffer.concat(this.#body) });
      for (const b of this.#body) b.fill(0);
      this.#args = undefined;
      this.#body = [];
    }
  }
}
