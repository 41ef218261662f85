// BIP 173 Bech32 decoding, as age uses it for keys (without the 90-character limit).
// It reads bytes, not a string: an age identity is decoded from the identity file's own Buffer,
// so the key never becomes a JS string (which could not be zeroed).
const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
const SEPARATOR = 0x31; // '1'

/** The 5-bit value of each lowercase ASCII character of CHARSET, -1 for any other byte. */
const VALUES = new Int8Array(256).fill(-1);
for (let i = 0; i < CHARSET.length; i++) VALUES[CHARSET.charCodeAt(i)] = i;

function polymodStep(chk: number, value: number): number {
  const top = chk >>> 25;
  chk = ((chk & 0x1ffffff) << 5) ^ value;
  for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATOR[i]!;
  return chk;
}

function isUpper(b: number): boolean {
  return b >= 0x41 && b <= 0x5a;
}

function isLower(b: number): boolean {
  return b >= 0x61 && b <= 0x7a;
}

function toLower(b: number): number {
  return isUpper(b) ? b + 0x20 : b;
}

/**
 * Decodes Bech32 text (ASCII bytes) into its human-readable prefix (lowercased) and bytes. The
 * caller owns and zeroes the bytes. Throws a plain Error on any malformation; the message never
 * echoes the input.
 */
export function decodeBech32(text: Uint8Array): { prefix: string; bytes: Buffer } {
  let lower = false;
  let upper = false;
  for (const b of text) {
    lower ||= isLower(b);
    upper ||= isUpper(b);
  }
  if (lower && upper) throw new Error("mixed-case Bech32");
  const sep = text.lastIndexOf(SEPARATOR);
  if (sep < 1 || text.length - sep - 1 < 6) throw new Error("malformed Bech32");

  // The prefix is public ("age-secret-key-"): it may be a string.
  let prefix = "";
  let chk = 1;
  for (let i = 0; i < sep; i++) {
    const c = toLower(text[i]!);
    if (c < 33 || c > 126) throw new Error("malformed Bech32 prefix");
    prefix += String.fromCharCode(c);
    chk = polymodStep(chk, c >> 5);
  }
  chk = polymodStep(chk, 0);
  for (let i = 0; i < sep; i++) chk = polymodStep(chk, toLower(text[i]!) & 31);

  const words = new Uint8Array(text.length - sep - 1);
  try {
    for (let i = 0; i < words.length; i++) {
      const w = VALUES[toLower(text[sep + 1 + i]!)]!;
      if (w < 0) throw new Error("invalid Bech32 character");
      words[i] = w;
      chk = polymodStep(chk, w);
    }
    if (chk >>> 0 !== 1) throw new Error("invalid Bech32 checksum");
    const data = words.subarray(0, -6);
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
    const padding = (acc << (8 - bits)) & 0xff;
    acc = 0;
    if (bits >= 5 || padding !== 0) {
      bytes.fill(0);
      throw new Error("invalid Bech32 padding");
    }
    return { prefix, bytes };
  } finally {
    words.fill(0);
  }
}
