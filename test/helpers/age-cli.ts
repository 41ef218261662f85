// Test helpers around the interop peers: Debian's Go `age` and OpenSSH's ssh-keygen.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

// execFileSync buffers 1 MiB by default; interop tests cross that on purpose.
const MAX_OUTPUT = 256 * 1024 * 1024;

export interface KeyPair {
  /** Path of the private key (identity) file. */
  privatePath: string;
  /** Recipient string: an OpenSSH public key line or an age1… recipient. */
  recipient: string;
}

export function generateSshKey(dir: string, type: "ed25519" | "rsa", bits = 2048, name = `ssh_host_${type}_key`): KeyPair {
  const privatePath = join(dir, name);
  const args = ["-q", "-t", type, "-N", "", "-C", "", "-f", privatePath];
  if (type === "rsa") args.push("-b", String(bits));
  execFileSync("ssh-keygen", args);
  const recipient = readFileSync(`${privatePath}.pub`, "utf8").trim();
  return { privatePath, recipient };
}

export function generateAgeKey(dir: string, name = "age.key"): KeyPair {
  const privatePath = join(dir, name);
  execFileSync("age-keygen", ["-o", privatePath], { stdio: ["ignore", "ignore", "ignore"] });
  const recipient = execFileSync("age-keygen", ["-y", privatePath], { encoding: "utf8" }).trim();
  return { privatePath, recipient };
}

/** Encrypts with Go age to every recipient given (SSH public key lines or age1… strings). */
export function ageEncrypt(plaintext: Uint8Array | string, recipients: readonly string[], opts: { armor?: boolean } = {}): Buffer {
  const args = ["--encrypt"];
  if (opts.armor) args.push("--armor");
  for (const r of recipients) args.push("-r", r);
  return execFileSync("age", args, { input: plaintext, maxBuffer: MAX_OUTPUT });
}

/** Decrypts with Go age; throws if age fails. */
export function ageDecrypt(ciphertext: Uint8Array, identityPaths: readonly string[]): Buffer {
  const args = ["--decrypt"];
  for (const p of identityPaths) args.push("-i", p);
  return execFileSync("age", args, { input: ciphertext, maxBuffer: MAX_OUTPUT });
}

/** An OpenSSH key protected by a passphrase (ed25519 in OpenSSH format, rsa in legacy PEM format). */
export function generatePassphraseSshKey(dir: string, type: "ed25519" | "rsa", passphrase: string, name = `protected_${type}_key`): KeyPair {
  const privatePath = join(dir, name);
  const args = ["-q", "-t", type, "-N", passphrase, "-C", "", "-f", privatePath];
  if (type === "rsa") args.push("-b", "2048", "-m", "PEM");
  execFileSync("ssh-keygen", args);
  const recipient = readFileSync(`${privatePath}.pub`, "utf8").trim();
  return { privatePath, recipient };
}
