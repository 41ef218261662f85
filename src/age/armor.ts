import { AgeDecryptError } from "./errors.js";

const BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----";
const END = "-----END AGE ENCRYPTED FILE-----";
const COLUMNS = 64;
const PADDED_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function isWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/** True if the file (after leading whitespace) starts like PEM, so it must be parsed as armor. */
export function looksArmored(file: Uint8Array): boolean {
  let i = 0;
  while (i < file.length && isWhitespace(file[i]!)) i++;
  const marker = "-----BEGIN";
  if (file.length - i < marker.length) return false;
  for (let j = 0; j < marker.length; j++) if (file[i + j] !== marker.charCodeAt(j)) return false;
  return true;
}

/**
 * Decodes the age ASCII armor: a strict PEM subset with no headers, 64-column
 * lines of padded canonical base64, LF or CRLF line ends, and only whitespace
 * allowed around it (C2SP age.md, "ASCII armor").
 */
export function decodeArmor(file: Uint8Array): Buffer {
  const text = Buffer.from(file.buffer, file.byteOffset, file.byteLength).toString("latin1");
  const lines = text.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, "").replaceAll("\r\n", "\n").split("\n");
  if (lines.shift() !== BEGIN) throw new AgeDecryptError("invalid armor: bad begin line");
  if (lines.pop() !== END) throw new AgeDecryptError("invalid armor: bad or missing end line");
  if (lines.length === 0) throw new AgeDecryptError("invalid armor: no data");
  lines.forEach((line, i) => {
    const last = i === lines.length - 1;
    const lengthOk = last ? line.length > 0 && line.length <= COLUMNS && line.length % 4 === 0 : line.length === COLUMNS;
    if (!lengthOk) throw new AgeDecryptError(`invalid armor: line ${i + 2} has the wrong length`);
    if (!PADDED_BASE64.test(line) || (!last && line.includes("="))) {
      throw new AgeDecryptError(`invalid armor: line ${i + 2} is not base64`);
    }
  });
  const joined = lines.join("");
  const decoded = Buffer.from(joined, "base64");
  if (decoded.toString("base64") !== joined) throw new AgeDecryptError("invalid armor: non-canonical base64");
  return decoded;
}
