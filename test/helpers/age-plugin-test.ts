// A small age plugin (C2SP age-plugin.md, identity-v1) for the tests: its identity
// AGE-PLUGIN-<NAME>-1… holds an X25519 scalar, and it unwraps native X25519 stanzas with it (the
// spec lets a plugin handle `X25519`). It follows the specification on its own, with node:crypto
// only, and imports nothing from agenixd: Go `age` 1.1.1 runs it as well (test/age-plugin.test.ts).
// Run as `node age-plugin-test.js MODE [COUNT_FILE] --age-plugin=identity-v1`; MODE is `normal`,
// one of the hostile behaviours below, or `socket=PATH`: normal once it can connect to the unix
// socket PATH, else an internal error (a YubiKey's plugin without pcscd).
import { createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, hkdfSync } from "node:crypto";
import { appendFileSync, writeSync } from "node:fs";
import { createConnection } from "node:net";
import { fileURLToPath } from "node:url";

const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values: number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GEN[i]!;
  }
  return chk;
}

function hrpExpand(hrp: string): number[] {
  const out: number[] = [];
  for (const c of hrp) out.push(c.charCodeAt(0) >> 5);
  out.push(0);
  for (const c of hrp) out.push(c.charCodeAt(0) & 31);
  return out;
}

function convertBits(data: Iterable<number>, from: number, to: number, pad: boolean): number[] {
  let acc = 0;
  let bits = 0;
  const out: number[] = [];
  for (const v of data) {
    acc = (acc << from) | v;
    bits += from;
    while (bits >= to) {
      bits -= to;
      out.push((acc >> bits) & ((1 << to) - 1));
    }
  }
  if (pad && bits > 0) out.push((acc << (to - bits)) & ((1 << to) - 1));
  return out;
}

export function bech32Encode(hrp: string, bytes: Uint8Array, upper: boolean): string {
  const lowerHrp = hrp.toLowerCase();
  const words = convertBits(bytes, 8, 5, true);
  const chk = polymod([...hrpExpand(lowerHrp), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
  for (let i = 0; i < 6; i++) words.push((chk >> (5 * (5 - i))) & 31);
  const text = `${lowerHrp}1${words.map((w) => CHARSET[w]).join("")}`;
  return upper ? text.toUpperCase() : text;
}

export function bech32Decode(text: string): { hrp: string; bytes: Buffer } {
  const lower = text.toLowerCase();
  const sep = lower.lastIndexOf("1");
  const hrp = lower.slice(0, sep);
  const words = [...lower.slice(sep + 1)].map((c) => CHARSET.indexOf(c));
  if (words.some((w) => w < 0) || polymod([...hrpExpand(hrp), ...words]) !== 1) throw new Error("bad bech32");
  return { hrp, bytes: Buffer.from(convertBits(words.slice(0, -6), 5, 8, false)) };
}

/** The plugin identity for the plugin `name` that holds the X25519 key of an AGE-SECRET-KEY-1… line. */
export function pluginIdentityFor(ageSecretKey: string, name: string): string {
  return bech32Encode(`AGE-PLUGIN-${name.toUpperCase()}-`, bech32Decode(ageSecretKey.trim()).bytes, true);
}

interface Stanza {
  args: string[];
  body: Buffer;
}

function encode(args: string[], body: Buffer = Buffer.alloc(0)): string {
  const b64 = body.toString("base64").replace(/=+$/, "");
  let out = `-> ${args.join(" ")}\n`;
  for (let i = 0; i <= b64.length; i += 64) out += `${b64.slice(i, i + 64)}\n`;
  return out;
}

/** Reads stanzas from stdin, one at a time. */
class Input {
  #buf = "";
  #lines: string[] = [];
  #waiters: ((line: string | undefined) => void)[] = [];
  #ended = false;

  constructor() {
    process.stdin.setEncoding("latin1");
    process.stdin.on("data", (d: string) => {
      this.#buf += d;
      let i: number;
      while ((i = this.#buf.indexOf("\n")) >= 0) {
        this.#lines.push(this.#buf.slice(0, i));
        this.#buf = this.#buf.slice(i + 1);
      }
      this.#wake();
    });
    process.stdin.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
  }

  #wake(): void {
    while (this.#waiters.length > 0 && (this.#lines.length > 0 || this.#ended)) this.#waiters.shift()!(this.#lines.shift());
  }

  line(): Promise<string | undefined> {
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#wake();
    });
  }

  async stanza(): Promise<Stanza> {
    const first = await this.line();
    if (first === undefined || !first.startsWith("-> ")) throw new Error(`expected a stanza, got ${JSON.stringify(first)}`);
    const chunks: Buffer[] = [];
    for (;;) {
      const line = await this.line();
      if (line === undefined) throw new Error("truncated stanza");
      const chunk = Buffer.from(line, "base64");
      chunks.push(chunk);
      if (chunk.length < 48) break;
    }
    return { args: first.slice(3).split(" "), body: Buffer.concat(chunks) };
  }
}

function out(text: string): void {
  writeSync(1, text);
}

const X25519_PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex");
const X25519_SPKI = Buffer.from("302a300506032b656e032100", "hex");

function unwrapX25519(scalar: Buffer, stanza: Stanza): Buffer | undefined {
  const priv = createPrivateKey({ key: Buffer.concat([X25519_PKCS8, scalar]), format: "der", type: "pkcs8" });
  const ourPublic = (createPublicKey(priv).export({ format: "der", type: "spki" }) as Buffer).subarray(-32);
  const share = Buffer.from(stanza.args[1]!, "base64");
  const peer = createPublicKey({ key: Buffer.concat([X25519_SPKI, share]), format: "der", type: "spki" });
  const shared = diffieHellman({ privateKey: priv, publicKey: peer });
  const key = Buffer.from(hkdfSync("sha256", shared, Buffer.concat([share, ourPublic]), "age-encryption.org/v1/X25519", 32));
  try {
    const d = createDecipheriv("chacha20-poly1305", key, Buffer.alloc(12), { authTagLength: 16 });
    d.setAuthTag(stanza.body.subarray(16));
    return Buffer.concat([d.update(stanza.body.subarray(0, 16)), d.final()]);
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const [mode, countFile, flag] = process.argv.slice(2);
  if (!process.argv.includes("--age-plugin=identity-v1")) {
    process.stderr.write(`unsupported: ${flag}\n`);
    process.exit(1);
  }
  if (countFile !== undefined && countFile !== "-") appendFileSync(countFile, `${process.pid} ${JSON.stringify(process.env)}\n`);
  const input = new Input();
  const identities: Buffer[] = [];
  const stanzas: { file: number; stanza: Stanza }[] = [];
  for (;;) {
    const s = await input.stanza();
    if (s.args[0] === "done") break;
    if (s.args[0] === "add-identity") identities.push(bech32Decode(s.args[1]!).bytes);
    else if (s.args[0] === "recipient-stanza") stanzas.push({ file: Number(s.args[1]), stanza: { args: s.args.slice(2), body: s.body } });
    // anything else (grease) is ignored, as phase 1 requires
  }
  const ask = async (args: string[], body?: Buffer): Promise<Stanza> => {
    out(encode(args, body));
    return input.stanza();
  };
  if (mode?.startsWith("socket=")) {
    // As age-plugin-yubikey does through pcscd: no daemon, no card, an internal error.
    const path = mode.slice("socket=".length);
    const reached = await new Promise<boolean>((resolve) => {
      const c = createConnection(path, () => {
        c.destroy();
        resolve(true);
      });
      c.on("error", () => resolve(false));
    });
    if (!reached) {
      await ask(["error", "internal"], Buffer.from(`cannot reach the card service at ${path}`));
      process.exit(4);
    }
  }
  switch (mode) {
    case "hang":
      await new Promise(() => setInterval(() => {}, 1000));
      return;
    case "flood":
      for (;;) out(encode(["msg"], Buffer.alloc(48 * 1000, 0x41)));
    case "garbage":
      out("this is not a stanza\n");
      await new Promise(() => setInterval(() => {}, 1000));
      return;
    case "die":
      await ask(["msg"], Buffer.from("about to die"));
      process.stderr.write("test plugin: dying on purpose\n");
      process.exit(3);
    case "huge":
      out(encode(["file-key", "0"], Buffer.alloc(8 * 1024 * 1024, 1)));
      await new Promise(() => setInterval(() => {}, 1000));
      return;
    case "pin": {
      const answer = await ask(["request-secret"], Buffer.from("Enter PIN for test key\x1b[31m"));
      if (answer.args[0] !== "ok") {
        await ask(["error", "identity", "0"], Buffer.from("PIN required"));
        out(encode(["done"]));
        return;
      }
      break;
    }
    default:
  }
  if (mode === "msg") await ask(["msg"], Buffer.from("touch your test key"));
  // grease, which a client must answer with `unsupported`
  const grease = await ask(["grease-test", "x"], Buffer.from("grease"));
  if (grease.args[0] !== "unsupported") throw new Error(`grease answered with ${grease.args[0]}`);
  const sent = new Set<number>();
  for (const { file, stanza } of stanzas) {
    if (stanza.args[0] !== "X25519" || sent.has(file)) continue;
    for (const scalar of identities) {
      const key = unwrapX25519(scalar, stanza);
      if (key === undefined) continue;
      const ok = await ask(["file-key", String(file)], key);
      if (ok.args[0] !== "ok") throw new Error("file-key not acknowledged");
      sent.add(file);
      break;
    }
  }
  out(encode(["done"]));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e: Error) => {
    process.stderr.write(`test plugin: ${e.message}\n`);
    process.exit(2);
  });
}
