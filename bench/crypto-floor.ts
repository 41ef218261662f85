// The crypto floor: what decrypting one age file costs in node:crypto when nothing but the
// cryptography is done — unwrap the file key (X25519 [+ the ssh-ed25519 tweak] or RSA-OAEP,
// HKDF-SHA256, ChaCha20-Poly1305), check the header HMAC, decrypt the STREAM payload. No file
// I/O, no parsing, no process. Inputs are synthesised with the same shapes and plaintext sizes
// as the fixtures; only the decryption side is timed.
import {
  createCipheriv, createDecipheriv, createHmac, createPrivateKey, createPublicKey, diffieHellman,
  generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, constants, type KeyObject,
} from "node:crypto";
import { x25519PublicKey } from "../src/age/curve25519.js";
import type { KeyType } from "./options.js";

const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");
const CHUNK = 64 * 1024;
const TAG = 16;

// The floor uses the cheapest node:crypto route measured: an X25519 point imported as agenixd
// imports it (src/age/curve25519.ts: raw where node takes it, about half a JWK import, else as
// JWK, ~5x faster than as DER/SPKI with OpenSSL 3's decoder lookup); HKDF with one output block
// is two HMACs, cheaper than hkdfSync's EVP_KDF set-up.
function x25519Private(raw: Uint8Array): KeyObject {
  const pub = diffieHellmanBasePoint(raw);
  return createPrivateKey({ key: { kty: "OKP", crv: "X25519", x: pub, d: Buffer.from(raw).toString("base64url") }, format: "jwk" });
}
function diffieHellmanBasePoint(raw: Uint8Array): string {
  // JWK private keys need x; derive it once through a DER import (set-up, not timed).
  const der = Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), raw]);
  return rawPublic(createPublicKey(createPrivateKey({ key: der, format: "der", type: "pkcs8" }))).toString("base64url");
}
function rawPublic(k: KeyObject): Buffer {
  return k.export({ format: "der", type: "spki" }).subarray(X25519_SPKI_PREFIX.length);
}
/** RFC 5869 HKDF-SHA256 for a single 32-byte output block. */
function hkdf(ikm: Uint8Array, salt: Uint8Array, info: string): Buffer {
  const prk = createHmac("sha256", salt.length > 0 ? salt : Buffer.alloc(32)).update(ikm).digest();
  const okm = createHmac("sha256", prk).update(info).update(ONE).digest();
  prk.fill(0);
  return okm;
}
const ONE = Buffer.from([1]);
function seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Buffer {
  const c = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG });
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
}
function open(key: Uint8Array, nonce: Uint8Array, sealed: Buffer): Buffer {
  const d = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG });
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]);
}
function streamNonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUIntBE(counter, 5, 6);
  n[11] = last ? 1 : 0;
  return n;
}

interface SyntheticFile {
  ephemeral?: Buffer;   // X25519 share (x25519, ssh-ed25519)
  wrapped: Buffer;      // the stanza body
  header: Buffer;       // bytes covered by the MAC
  mac: Buffer;
  payloadNonce: Buffer;
  chunks: Buffer[];
}

interface Identity {
  keyType: KeyType;
  unwrap(file: SyntheticFile): Buffer;
  wrap(fileKey: Buffer): { ephemeral?: Buffer; wrapped: Buffer; stanzaLength: number };
}

function x25519Identity(label: string, tweak: KeyObject | null): Identity {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const recipientRaw = rawPublic(publicKey);
  // For ssh-ed25519 the recipient's effective point is the tweaked one; the floor only needs
  // the same number and kind of operations, so the tweak is applied on both sides.
  const effective = (shared: Buffer): Buffer => (tweak ? diffieHellman({ privateKey: tweak, publicKey: x25519PublicKey(shared) }) : shared);
  return {
    keyType: tweak ? "ssh-ed25519" : "x25519",
    wrap(fileKey) {
      const eph = generateKeyPairSync("x25519");
      const ephRaw = rawPublic(eph.publicKey);
      const shared = effective(diffieHellman({ privateKey: eph.privateKey, publicKey }));
      const key = hkdf(shared, Buffer.concat([ephRaw, recipientRaw]), label);
      return { ephemeral: ephRaw, wrapped: seal(key, Buffer.alloc(12), fileKey), stanzaLength: 110 };
    },
    unwrap(file) {
      const shared = effective(diffieHellman({ privateKey, publicKey: x25519PublicKey(file.ephemeral!) }));
      const key = hkdf(shared, Buffer.concat([file.ephemeral!, recipientRaw]), label);
      return open(key, Buffer.alloc(12), file.wrapped);
    },
  };
}

function rsaIdentity(): Identity {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 4096 });
  const oaep = { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256", oaepLabel: Buffer.from("age-encryption.org/v1/ssh-rsa") };
  return {
    keyType: "ssh-rsa",
    wrap: (fileKey) => ({ wrapped: publicEncrypt({ key: publicKey, ...oaep }, fileKey), stanzaLength: 720 }),
    unwrap: (file) => privateDecrypt({ key: privateKey, ...oaep }, file.wrapped),
  };
}

function makeIdentity(keyType: KeyType): Identity {
  switch (keyType) {
    case "x25519": return x25519Identity("age-encryption.org/v1/X25519", null);
    case "ssh-ed25519": return x25519Identity("age-encryption.org/v1/ssh-ed25519", x25519Private(randomBytes(32)));
    case "ssh-rsa": return rsaIdentity();
  }
}

function synthesise(identity: Identity, size: number): SyntheticFile {
  const fileKey = randomBytes(16);
  const { ephemeral, wrapped, stanzaLength } = identity.wrap(fileKey);
  const header = randomBytes(stanzaLength + 40);
  const mac = createHmac("sha256", hkdf(fileKey, Buffer.alloc(0), "header")).update(header).digest();
  const payloadNonce = randomBytes(16);
  const payloadKey = hkdf(fileKey, payloadNonce, "payload");
  const plaintext = randomBytes(size);
  const chunks: Buffer[] = [];
  for (let i = 0, off = 0; off < size || i === 0; i++, off += CHUNK) {
    const end = Math.min(off + CHUNK, size);
    chunks.push(seal(payloadKey, streamNonce(i, end === size), plaintext.subarray(off, end)));
  }
  return { ephemeral, wrapped, header, mac, payloadNonce, chunks };
}

function decrypt(identity: Identity, file: SyntheticFile): Buffer {
  const fileKey = identity.unwrap(file);
  const mac = createHmac("sha256", hkdf(fileKey, Buffer.alloc(0), "header")).update(file.header).digest();
  if (!mac.equals(file.mac)) throw new Error("crypto floor: header MAC mismatch");
  const payloadKey = hkdf(fileKey, file.payloadNonce, "payload");
  const parts = file.chunks.map((c, i) => open(payloadKey, streamNonce(i, i === file.chunks.length - 1), c));
  fileKey.fill(0);
  payloadKey.fill(0);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

export interface CryptoFloor {
  keyType: KeyType;
  /** Median of the samples: per-secret cost in microseconds for the fixtures' size mix. */
  perSecretUs: number;
  samplesUs: number[];
}

export interface CryptoFloorProbe {
  /** Decrypts every synthetic file once; returns the mean cost per secret in microseconds. */
  sample(): number;
}

/**
 * Prepares `count` synthetic files with the given size mix. The bench takes one sample after
 * each timed run, so the floor sees the same machine load as the contestants do.
 */
export function prepareCryptoFloor(keyType: KeyType, sizes: number[], count: number): CryptoFloorProbe {
  const identity = makeIdentity(keyType);
  const files = Array.from({ length: count }, (_, i) => synthesise(identity, sizes[i % sizes.length]!));
  const once = (): number => {
    const t0 = process.hrtime.bigint();
    for (const f of files) decrypt(identity, f).fill(0);
    return Number(process.hrtime.bigint() - t0) / 1e3 / count;
  };
  once(); // warms up the JIT and OpenSSL's algorithm fetch caches
  return { sample: once };
}
