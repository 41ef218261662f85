// Host keys and secrets encrypted by Debian's Go `age`, cached under bench/work/ by their inputs
// (age version, key type, plaintext sizes) so that only the first run pays for ~3000 encryptions.
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { generateAgeKey, generateSshKey, type KeyPair } from "../test/helpers/age-cli.js";
import type { KeyType } from "./options.js";

const execFileAsync = promisify(execFile);

export interface FixtureSecret {
  /** Absolute path of the .age file (plays the role of the Nix store path). */
  file: string;
  size: number;
  /** SHA-256 of the plaintext, to check every output after a run. */
  sha256: string;
}

export interface Fixture {
  keyType: KeyType;
  identityPath: string;
  recipient: string;
  secrets: FixtureSecret[];
}

interface CacheRecord {
  ageVersion: string;
  sizes: number[];
  recipient: string;
  secrets: FixtureSecret[];
}

/** Deterministic printable plaintext; bench fixtures are not secret, but are only ever piped to age. */
export function plaintextFor(index: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash("sha256").update(`agenixd-bench-secret-${index}`).digest();
  for (let offset = 0; offset < size; offset += 32) {
    block.toString("base64url").slice(0, 32).split("").forEach((c, i) => {
      if (offset + i < size) out[offset + i] = c.charCodeAt(0);
    });
    block = createHash("sha256").update(block).digest();
  }
  return out;
}

function generateKey(dir: string, keyType: KeyType): KeyPair {
  switch (keyType) {
    case "ssh-ed25519": return generateSshKey(dir, "ed25519");
    // 4096 bits is the NixOS default for services.openssh.hostKeys.
    case "ssh-rsa": return generateSshKey(dir, "rsa", 4096);
    case "x25519": return generateAgeKey(dir);
  }
}

async function encryptAll(jobs: { index: number; size: number; file: string }[], recipient: string, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      const child = execFileAsync("age", ["--encrypt", "-r", recipient, "-o", job.file]);
      child.child.stdin!.end(plaintextFor(job.index, job.size));
      await child;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

export async function prepareFixture(workDir: string, keyType: KeyType, count: number, sizes: number[]): Promise<Fixture> {
  const dir = join(workDir, "fixtures", keyType);
  const recordPath = join(dir, "fixture.json");
  const ageVersion = execFileSync("age", ["--version"], { encoding: "utf8" }).trim();
  let record: CacheRecord | undefined;
  if (existsSync(recordPath)) {
    const cached = JSON.parse(readFileSync(recordPath, "utf8")) as CacheRecord;
    const keyStillThere = existsSync(identityPathIn(dir, keyType));
    if (keyStillThere && cached.ageVersion === ageVersion && cached.sizes.join() === sizes.join()) record = cached;
  }
  if (!record) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, "secrets"), { recursive: true });
    const key = generateKey(dir, keyType);
    record = { ageVersion, sizes, recipient: key.recipient, secrets: [] };
  }
  if (record.secrets.length < count) {
    const jobs = [];
    for (let index = record.secrets.length; index < count; index++) {
      const size = sizes[index % sizes.length]!;
      jobs.push({ index, size, file: join(dir, "secrets", `secret-${String(index).padStart(5, "0")}.age`) });
    }
    process.stderr.write(`bench: encrypting ${jobs.length} ${keyType} secrets with Go age (cached afterwards)\n`);
    await encryptAll(jobs, record.recipient, 4);
    for (const job of jobs) {
      const sha256 = createHash("sha256").update(plaintextFor(job.index, job.size)).digest("hex");
      record.secrets.push({ file: job.file, size: job.size, sha256 });
    }
    writeFileSync(recordPath, JSON.stringify(record, null, 1));
  }
  return { keyType, identityPath: identityPathIn(dir, keyType), recipient: record.recipient, secrets: record.secrets.slice(0, count) };
}

function identityPathIn(dir: string, keyType: KeyType): string {
  switch (keyType) {
    case "ssh-ed25519": return join(dir, "ssh_host_ed25519_key");
    case "ssh-rsa": return join(dir, "ssh_host_rsa_key");
    case "x25519": return join(dir, "age.key");
  }
}
