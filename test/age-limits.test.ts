// One crafted .age file must cost bounded, linear time and fail alone with its limit in the
// message (src/age/limits.ts, docs/limits.md). Every attack here stalled or exhausted the whole
// activation before the limits existed. Timings are never compared with absolute figures: each
// attack is bounded by a multiple of a baseline measured in the same run, on the same machine.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Encrypter, generateHybridIdentity, generateX25519Identity, identityToRecipient } from "age-encryption";
import { AgeDecryptError, type AgeIdentity, type AgeLimits, DEFAULT_LIMITS, decryptAge } from "../src/age/index.js";
import { parseHeader } from "../src/age/header.js";
import { decryptPayload } from "../src/age/payload.js";
import { loadIdentities } from "../src/identities.js";
import { type KeyPair, ageEncrypt, generateAgeKey, generateSshKey } from "./helpers/age-cli.js";

const BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----";
const END = "-----END AGE ENCRYPTED FILE-----";
const MAC_LINE = `--- ${"A".repeat(43)}\n`;

let dir: string;
let x25519: KeyPair;
let ed25519: KeyPair;
let x25519Ids: AgeIdentity[];
let pqIds: AgeIdentity[];
let pqRecipient: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agenixd-age-limits-"));
  x25519 = generateAgeKey(dir);
  ed25519 = generateSshKey(dir, "ed25519");
  const pq = await generateHybridIdentity();
  pqRecipient = await identityToRecipient(pq);
  writeFileSync(join(dir, "pq.key"), `${pq}\n`, { mode: 0o600 });
  const fail = (w: { path: string; reason: string }) => assert.fail(`${w.path}: ${w.reason}`);
  x25519Ids = await loadIdentities([x25519.privatePath], fail);
  pqIds = await loadIdentities([join(dir, "pq.key")], fail);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function b64(bytes: number): string {
  return randomBytes(bytes).toString("base64").replace(/=+$/, "");
}

/** A header of the given stanza text and a MAC line that cannot match; nothing after it. */
function craft(stanzas: string): Buffer {
  return Buffer.from(`age-encryption.org/v1\n${stanzas}${MAC_LINE}`, "latin1");
}

async function elapsed(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

async function median(runs: number, run: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await elapsed(run));
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

/** The file key (unwrapped with the X25519 identity) and the payload after the header. */
async function fileKeyAndPayload(file: Uint8Array): Promise<[Uint8Array, Uint8Array]> {
  const header = parseHeader(file, DEFAULT_LIMITS);
  const fileKey = await x25519Ids[0]!.unwrapFileKey(header.stanzas, { check() {} });
  assert.ok(fileKey);
  return [fileKey, file.subarray(header.payloadOffset)];
}

/** Asserts that decryption fails with an AgeDecryptError matching `pattern`; returns how long it took. */
async function rejection(file: Uint8Array, ids: readonly AgeIdentity[], pattern: RegExp, limits: AgeLimits = DEFAULT_LIMITS): Promise<number> {
  return elapsed(() =>
    assert.rejects(decryptAge(file, ids, limits), (err: unknown) => {
      assert.ok(err instanceof AgeDecryptError, `expected AgeDecryptError, got ${String(err)}`);
      assert.match(err.message, pattern);
      return true;
    }),
  );
}

function assertWithin(what: string, ms: number, bound: number): void {
  assert.ok(ms < bound, `${what} took ${ms.toFixed(1)} ms, more than its bound of ${bound.toFixed(1)} ms`);
}

test("armor: a run of whitespace anywhere costs linear time (a trim regex made 300k spaces take 53 s)", async (t) => {
  const size = 256 * 1024;
  // Baseline: a real armored file of the same size, decoded and decrypted.
  const legit = ageEncrypt(randomBytes((size * 3) / 4 - 512), [x25519.recipient], { armor: true });
  const baseline = await median(3, () => decryptAge(legit, x25519Ids));
  const bound = 10 * baseline + 20;
  const run = " ".repeat(size);
  const mixed = " \t\r\n".repeat(size / 4);
  const attacks: Record<string, [string, RegExp]> = {
    "spaces after the begin line, then junk": [`${BEGIN}\n${run}x\n`, /^invalid armor: bad or missing end line$/],
    "spaces and line ends after the begin line, then junk": [`${BEGIN}\n${mixed}x`, /^invalid armor: bad or missing end line$/],
    "spaces after the begin line's text": [`${BEGIN}${run}x\n${END}`, /^invalid armor: bad begin line$/],
    "spaces after the end line, then junk": [`${legit.toString("latin1")}${run}x`, /^invalid armor: bad or missing end line$/],
    "spaces before junk": [`${run}x`, /^not an age file$/],
    "spaces before the begin line, then junk": [`${run}${BEGIN}\n${run}x`, /^invalid armor: bad or missing end line$/],
  };
  for (const [what, [text, pattern]] of Object.entries(attacks)) {
    const ms = await rejection(Buffer.from(text, "latin1"), x25519Ids, pattern);
    t.diagnostic(`${what}: ${ms.toFixed(1)} ms (bound ${bound.toFixed(1)} ms)`);
    assertWithin(what, ms, bound);
  }
  // Whitespace around real armor is allowed, however much of it.
  const padded = Buffer.from(`${mixed}${legit.toString("latin1")}${mixed}`, "latin1");
  assertWithin("a real file inside whitespace", await elapsed(() => decryptAge(padded, x25519Ids)), bound);
});

test("header: a million stanzas fail at the stanza limit, in the time 1024 take (1M empty stanzas took 7 s, 16M exhausted the heap)", async (t) => {
  const atLimit = craft("-> a\n\n".repeat(DEFAULT_LIMITS.maxStanzas));
  const baseline = await median(3, () => rejection(atLimit, x25519Ids, /^no identity matches any recipient \(file is for: a\)$/));
  const million = craft("-> a\n\n".repeat(1_000_000));
  const ms = await rejection(million, x25519Ids, /^header has more than 1024 stanzas \(limit 1024\)$/);
  t.diagnostic(`1024 stanzas: ${baseline.toFixed(1)} ms; 1,000,000: ${ms.toFixed(1)} ms`);
  assertWithin("a million stanzas", ms, 5 * baseline + 20);
});

test("header: the stanza limit counts exactly", async () => {
  const limits = { ...DEFAULT_LIMITS, maxStanzas: 3 };
  await rejection(craft("-> a\n\n".repeat(3)), x25519Ids, /^no identity matches any recipient/, limits);
  await rejection(craft("-> a\n\n".repeat(4)), x25519Ids, /^header has more than 3 stanzas \(limit 3\)$/, limits);
});

test("header: its size is bounded, and no line search runs past the limit", async () => {
  // One stanza whose body is 3 MiB of full base64 lines.
  const bigBody = `-> big\n${`${"A".repeat(64)}\n`.repeat((3 * 1024 * 1024) / 64)}\n`;
  await rejection(craft(bigBody), x25519Ids, /^header is longer than 2 MiB \(limit 2 MiB\)$/);
  // A header line that never ends, in a 16 MiB file: refused by the limit, not by the file's end.
  const endless = Buffer.alloc(16 * 1024 * 1024, 0x41);
  endless.write("age-encryption.org/v1\n-> ");
  await rejection(endless, x25519Ids, /^header is longer than 2 MiB \(limit 2 MiB\)$/);
  // The limit is inclusive: a real header of exactly the limit passes, one byte less fails.
  const real = ageEncrypt("x", [x25519.recipient]);
  const headerBytes = real.indexOf("\n", real.indexOf("\n--- ") + 1) + 1;
  assert.equal((await decryptAge(real, x25519Ids, { ...DEFAULT_LIMITS, maxHeaderBytes: headerBytes })).toString(), "x");
  await rejection(real, x25519Ids, new RegExp(`^header is longer than ${headerBytes - 1} bytes \\(limit ${headerBytes - 1} bytes\\)$`), {
    ...DEFAULT_LIMITS,
    maxHeaderBytes: headerBytes - 1,
  });
});

test("X25519: 20k untagged stanzas stop at the stanza limit; the 1024 it allows stay within the time budget", async (t) => {
  const stanza = () => `-> X25519 ${b64(32)}\n${b64(32)}\n`;
  const allowed = craft(Array.from({ length: DEFAULT_LIMITS.maxStanzas }, stanza).join(""));
  const tried = await rejection(allowed, x25519Ids, /^no identity matches any recipient \(file is for: X25519\)$/);
  const many = craft(Array.from({ length: 20_000 }, stanza).join(""));
  const refused = await rejection(many, x25519Ids, /^header has more than 1024 stanzas \(limit 1024\)$/);
  t.diagnostic(`1024 X25519 stanzas tried: ${tried.toFixed(1)} ms; 20,000 refused: ${refused.toFixed(1)} ms`);
  // Refusing 20k costs less than trying the 1024 (before the limit, 20k stanzas took 2 s).
  assertWithin("20k X25519 stanzas", refused, tried);
  assertWithin("1024 X25519 stanzas", tried, DEFAULT_LIMITS.timeBudgetMs / 10);
});

test("ML-KEM: a thousand bogus mlkem768x25519 stanzas stop at the file's time budget (they took 41 s under --no-opt)", async (t) => {
  const stanza = () => `-> mlkem768x25519 ${b64(1120)}\n${b64(32)}\n`;
  const four = craft(Array.from({ length: 4 }, stanza).join(""));
  const perStanza = (await median(3, () => rejection(four, pqIds, /^no identity matches any recipient/))) / 4;
  const budget = Math.max(50, Math.ceil(20 * perStanza));
  const thousand = craft(Array.from({ length: 1000 }, stanza).join(""));
  const ms = await rejection(thousand, pqIds, new RegExp(`^decryption took more than ${budget} ms \\(limit ${budget} ms per file\\)$`), {
    ...DEFAULT_LIMITS,
    timeBudgetMs: budget,
  });
  t.diagnostic(`one stanza: ${perStanza.toFixed(1)} ms; budget ${budget} ms; 1000 stanzas stopped after ${ms.toFixed(1)} ms`);
  // The budget is checked before every stanza: it overruns by at most about one of them.
  assertWithin("1000 ML-KEM stanzas", ms, budget + 10 * perStanza + 20);
});

test("the time budget is checked before every payload chunk, and stops the file at the first check past it", async () => {
  const chunks = 40;
  const file = ageEncrypt(randomBytes(chunks * 64 * 1024 - 1000), [x25519.recipient]);
  const [fileKey, payload] = await fileKeyAndPayload(file);
  let checks = 0;
  const counting = { check: () => void checks++ };
  decryptPayload(fileKey, payload, counting).fill(0);
  assert.equal(checks, chunks, "one check per chunk");
  let left = 7;
  const ending = {
    check: () => {
      if (left-- === 0) throw new AgeDecryptError("budget over");
    },
  };
  assert.throws(() => decryptPayload(fileKey, payload, ending), /^AgeDecryptError: budget over$/);
  assert.equal(left, -1, "nothing is opened after the check that failed");
});

test("the time budget also stops a long payload", async () => {
  // 32 MiB in 1 ms would be 32 GB/s of ChaCha20-Poly1305 on one core, ten times what the fastest
  // CPUs do: the budget must end it. No budget is derived from a measured time, which a collection
  // or a busy machine inflates.
  const file = ageEncrypt(randomBytes(32 * 1024 * 1024), [ed25519.recipient]);
  const ids = await loadIdentities([ed25519.privatePath], (w) => assert.fail(w.reason));
  await rejection(file, ids, /^decryption took more than 1 ms \(limit 1 ms per file\)$/, { ...DEFAULT_LIMITS, timeBudgetMs: 1 });
});

test("a file larger than the file limit is refused before it is parsed, armored or not", async () => {
  const limits = { ...DEFAULT_LIMITS, maxFileBytes: 1024 };
  const plaintext = randomBytes(900);
  for (const armor of [false, true]) {
    const file = ageEncrypt(plaintext, [x25519.recipient], { armor });
    assert.ok(file.length > 1024);
    await rejection(file, x25519Ids, /^file is larger than 1 KiB \(limit 1 KiB\)$/, limits);
    assert.ok((await decryptAge(file, x25519Ids, { ...limits, maxFileBytes: file.length })).equals(plaintext));
  }
});

test("real files stay far below the limits: 300 X25519 recipients, 10 ML-KEM ones, ours last", async (t) => {
  const others = await Promise.all(Array.from({ length: 300 }, async () => identityToRecipient(await generateX25519Identity())));
  const plaintext = randomBytes(1000);
  const manyX25519 = ageEncrypt(plaintext, [...others, x25519.recipient]);
  const x25519Ms = await elapsed(async () => assert.ok((await decryptAge(manyX25519, x25519Ids)).equals(plaintext)));

  const encrypter = new Encrypter();
  for (let i = 0; i < 9; i++) encrypter.addRecipient(await identityToRecipient(await generateHybridIdentity()));
  encrypter.addRecipient(pqRecipient);
  const manyPq = await encrypter.encrypt(plaintext);
  const pqMs = await elapsed(async () => assert.ok((await decryptAge(manyPq, pqIds)).equals(plaintext)));
  t.diagnostic(`301 X25519 recipients: ${x25519Ms.toFixed(1)} ms; 10 ML-KEM recipients: ${pqMs.toFixed(1)} ms`);
  assertWithin("301 X25519 recipients", x25519Ms, DEFAULT_LIMITS.timeBudgetMs / 10);
  assertWithin("10 ML-KEM recipients", pqMs, DEFAULT_LIMITS.timeBudgetMs / 10);
});
