// A host identity sealed by systemd-creds: an identity path ending in ".cred" is a systemd encrypted
// credential (`systemd-creds encrypt --with-key=host|tpm2|host+tpm2`, optionally PCR-bound), whose
// plaintext is an age identity file. agenixd opens it with `systemd-creds decrypt PATH -`, reading
// the plaintext from the pipe into a Buffer of its own (zeroed after parsing): no plaintext key on
// disk. A credential that does not open (a changed TPM, a PCR mismatch, a replaced host key, a
// renamed file: systemd checks the name embedded at encryption) fails alone, with systemd-creds'
// own line, and the other identities are still tried.
import { childProcess } from "./child-process.js";
import { accessSync, constants, statSync } from "node:fs";
import { basename } from "node:path";

export const SEALED_SUFFIX = ".cred";

/** Where systemd-creds is looked for when AGENIXD_SYSTEMD_CREDS is not set (never PATH). */
export const SYSTEMD_CREDS_FALLBACKS: readonly string[] = ["/run/current-system/sw/bin/systemd-creds", "/usr/bin/systemd-creds", "/bin/systemd-creds"];

/** As identities.ts: far more than any key file. */
const MAX_PLAINTEXT_BYTES = 16 * 1024 * 1024;
/** A TPM may be slow; a hung one must not hold the boot. */
const DECRYPT_TIMEOUT_MS = 60_000;

export class SealedIdentityError extends Error {}

export function isSealedIdentity(path: string): boolean {
  return path.endsWith(SEALED_SUFFIX);
}

export function findSystemdCreds(env: NodeJS.ProcessEnv = process.env, fallbacks: readonly string[] = SYSTEMD_CREDS_FALLBACKS): string {
  const configured = env.AGENIXD_SYSTEMD_CREDS;
  if (configured !== undefined && configured !== "") {
    if (!configured.startsWith("/")) throw new SealedIdentityError(`AGENIXD_SYSTEMD_CREDS must be an absolute path, got "${configured}"`);
    return configured;
  }
  for (const candidate of fallbacks) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // the next one
    }
  }
  throw new SealedIdentityError(`cannot find systemd-creds: AGENIXD_SYSTEMD_CREDS is not set and none of ${fallbacks.join(", ")} exists`);
}

/**
 * The plaintext of a sealed identity, in a Buffer the caller zeroes. `sealed` is the credential
 * file's bytes, as root read them through the trust walk: systemd-creds gets them on stdin, never
 * the path to open again, and checks the name embedded in them against the file's name.
 * Throws SealedIdentityError with systemd-creds' last line when it cannot be opened.
 */
export function unsealIdentity(path: string, sealed: Buffer, env: NodeJS.ProcessEnv = process.env): Buffer {
  const tool = findSystemdCreds(env);
  try {
    return childProcess().execFileSync(tool, ["decrypt", `--name=${basename(path)}`, "-", "-"], {
      input: sealed,
      stdio: ["pipe", "pipe", "pipe"],
      maxBuffer: MAX_PLAINTEXT_BYTES,
      timeout: DECRYPT_TIMEOUT_MS,
      env: systemdCredsEnv(env),
    });
  } catch (e) {
    throw systemdCredsFailure("decrypt", tool, e, { maxBytes: MAX_PLAINTEXT_BYTES, what: "plaintext", tooLarge: "not a key file", timeoutMs: DECRYPT_TIMEOUT_MS });
  }
}

/** systemd-creds' environment: no PATH to search, and the log level a debugging run asked for. */
export function systemdCredsEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { PATH: "/nonexistent", ...(env.SYSTEMD_LOG_LEVEL ? { SYSTEMD_LOG_LEVEL: env.SYSTEMD_LOG_LEVEL } : {}) };
}

export interface SystemdCredsBounds {
  readonly maxBytes: number;
  /** What its output is, for the too-large message ("plaintext"). */
  readonly what: string;
  /** Why that is too large ("not a key file"). */
  readonly tooLarge: string;
  readonly timeoutMs: number;
}

/**
 * A failed run of `systemd-creds VERB` (execFile or execFileSync) as one line: systemd-creds' last
 * line of stderr, a timeout, an output over the bound, or a tool that could not be run. Zeroes
 * whatever output the child had given.
 */
export function systemdCredsFailure(verb: string, tool: string, e: unknown, bounds: SystemdCredsBounds): SealedIdentityError {
  const err = e as NodeJS.ErrnoException & { stdout?: Buffer | string; stderr?: Buffer | string; status?: number | null; signal?: string | null; killed?: boolean };
  if (Buffer.isBuffer(err.stdout)) err.stdout.fill(0);
  const lines = (err.stderr?.toString() ?? "").split("\n").map((l) => l.trim()).filter((l) => l !== "");
  const last = lines.at(-1)?.slice(0, 300);
  const mib = bounds.maxBytes / (1024 * 1024);
  if (err.code === "ENOBUFS" || err.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") return new SealedIdentityError(`systemd-creds ${verb}: ${bounds.what} larger than ${mib} MiB, ${bounds.tooLarge}`);
  if (err.signal === "SIGTERM") return new SealedIdentityError(`systemd-creds ${verb} timed out after ${bounds.timeoutMs / 1000} s`);
  const status = typeof err.code === "number" ? err.code : err.status;
  if (typeof err.code === "string" && (status === undefined || status === null)) return new SealedIdentityError(`cannot run ${tool}: ${err.code}`);
  return new SealedIdentityError(`systemd-creds ${verb} failed${status != null ? ` (exit status ${status})` : ""}: ${last ?? "no message"}`);
}
