// BIP 173 Bech32 decoding, as age uses it for keys (without the 90-character limit).
const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];

function polymod(values: readonly number[]): number {
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATOR[i]!;
  }
  return chk >>> 0;
}

function expandHrp(hrp: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) >> 5);
  out.push(0);
  for (let i = 0; i < hrp.length; i++) out.push(hrp.charCodeAt(i) & 31);
  return out;
}

/**
 * Decodes a Bech32 string into its human-readable prefix (lowercased) and bytes.
 * Throws a plain Error on any malformation; the message never echoes the input.
 */
export function decodeBech32(text: string): { prefix: string; bytes: Buffer } {
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) throw new Error("mixed-case Bech32");
  const lower = text.toLowerCase();
  const sep = lower.lastIndexOf("1");
  if (sep < 1 || lower.length - sep - 1 < 6) throw new Error("malformed Bech32");
  const prefix = lower.slice(0, sep);
  for (let i = 0; i < prefix.length; i++) {
    const c = prefix.charCodeAt(i);
    if (c < 33 || c > 126) throw new Error("malformed Bech32 prefix");
  }
  const words: number[] = [];
  for (const ch of lower.slice(sep + 1)) {
    const w = CHARSET.indexOf(ch);
    if (w < 0) throw new Error("invalid Bech32 character");
    words.push(w);
  }
  if (polymod([...expandHrp(prefix), ...words]) !== 1) throw new Error("invalid Bech32 checksum");
  const data = words.slice(0, -6);
  const bytes = Buffer.alloc(Math.floor((data.length * 5) / 8));
  let acc = 0;
  let bits = 0;
  let n = 0;
  for (const w of data) {
    acc = ((acc << 5) | w) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes[n++] = (acc >>> bits) & 0xff;
    }
  }
  if (bits >= 5 || ((acc << (8 - bits)) & 0xff) !== 0) throw new Error("invalid Bech32 padding");
  data.fill(0);
  words.fill(0);
  return { prefix, bytes };
}
