// An RSA private KeyObject with its CRT parameters, from the parts of an OpenSSH key.
// OpenSSH stores n, e, d, iqmp, p and q but not d mod (p-1) and d mod (q-1); sshpk's PKCS #8
// export writes those two as zero, and OpenSSL then decrypts without the CRT, about 4× slower
// (measured by bench/: 17.9 ms against 4.8 ms per secret with a 4096-bit host key).
//
// The key goes to OpenSSL as PKCS #1 DER written into one Buffer, zeroed once OpenSSL has read it,
// rather than as a JWK: a JWK is made of base64url strings, which stay in the V8 heap until it
// is collected and cannot be zeroed. d mod (p-1) and d mod (q-1) are computed with BigInts (also
// immutable, but numbers in the heap rather than text), converted from and to bytes without strings.
// The price is OpenSSL's DER decoder, ~0.25 ms more than the JWK import at the first key.
import { createPrivateKey, type KeyObject } from "node:crypto";

export interface RsaParts {
  readonly n: Uint8Array;
  readonly e: Uint8Array;
  readonly d: Uint8Array;
  readonly p: Uint8Array;
  readonly q: Uint8Array;
  /** q⁻¹ mod p */
  readonly iqmp: Uint8Array;
}

export function rsaPrivateKey(parts: RsaParts): KeyObject {
  const d = toBigInt(parts.d);
  const dp = fromBigInt(d % (toBigInt(parts.p) - 1n));
  const dq = fromBigInt(d % (toBigInt(parts.q) - 1n));
  // RSAPrivateKey ::= SEQUENCE { version 0, n, e, d, p, q, d mod (p-1), d mod (q-1), q⁻¹ mod p } (RFC 8017, A.1.2)
  const der = derSequence([new Uint8Array(1), parts.n, parts.e, parts.d, parts.p, parts.q, dp, dq, parts.iqmp]);
  try {
    return createPrivateKey({ key: der, format: "der", type: "pkcs1" });
  } finally {
    der.fill(0);
    dp.fill(0);
    dq.fill(0);
  }
}

/** Unsigned big-endian bytes to a BigInt, eight bytes at a time. */
function toBigInt(bytes: Uint8Array): bigint {
  const padded = new Uint8Array(Math.ceil(bytes.length / 8) * 8);
  padded.set(bytes, padded.length - bytes.length);
  const view = new DataView(padded.buffer);
  let n = 0n;
  for (let i = 0; i < padded.length; i += 8) n = (n << 64n) | view.getBigUint64(i);
  padded.fill(0);
  return n;
}

/** A non-negative BigInt to unsigned big-endian bytes (at least one). */
function fromBigInt(n: bigint): Uint8Array {
  const words: bigint[] = [];
  for (let rest = n; rest > 0n || words.length === 0; rest >>= 64n) words.push(rest & 0xffff_ffff_ffff_ffffn);
  const bytes = new Uint8Array(words.length * 8);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < words.length; i++) view.setBigUint64(bytes.length - 8 * (i + 1), words[i]!);
  return bytes;
}

/** DER: a SEQUENCE of unsigned INTEGERs, each in its minimal encoding. */
function derSequence(integers: readonly Uint8Array[]): Buffer {
  const bodies = integers.map(minimalUnsigned);
  const contentLength = bodies.reduce((sum, b) => sum + derHeaderLength(b.length + b.padding) + b.length + b.padding, 0);
  const out = Buffer.alloc(derHeaderLength(contentLength) + contentLength);
  let at = writeHeader(out, 0, 0x30, contentLength);
  for (const { bytes, start, padding, length } of bodies) {
    at = writeHeader(out, at, 0x02, length + padding);
    at += padding; // a 0x00 byte, so that an integer with its top bit set stays positive
    out.set(bytes.subarray(start), at);
    at += length;
  }
  return out;
}

function minimalUnsigned(bytes: Uint8Array): { bytes: Uint8Array; start: number; length: number; padding: number } {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const length = bytes.length - start;
  return { bytes, start, length, padding: length === 0 || bytes[start]! & 0x80 ? 1 : 0 };
}

function derHeaderLength(contentLength: number): number {
  if (contentLength < 0x80) return 2;
  let lengthBytes = 0;
  for (let n = contentLength; n > 0; n = Math.floor(n / 256)) lengthBytes++;
  return 2 + lengthBytes;
}

function writeHeader(out: Buffer, at: number, tag: number, contentLength: number): number {
  out[at++] = tag;
  if (contentLength < 0x80) {
    out[at++] = contentLength;
    return at;
  }
  const lengthBytes = derHeaderLength(contentLength) - 2;
  out[at++] = 0x80 | lengthBytes;
  for (let i = lengthBytes - 1; i >= 0; i--) out[at++] = Math.floor(contentLength / 256 ** i) % 256;
  return at;
}
