// How much of a machine one `.age` file may take. agenixd decrypts every secret of an activation
// in one process, as root, at boot: without these a single crafted file (a header of 16M empty
// stanzas, a megabyte of armor whitespace, a thousand bogus ML-KEM stanzas) stalls or exhausts the
// whole activation. With them, a file over a limit fails alone, with the limit in its message, and
// keeps its previous value. docs/limits.md has the inputs tried and the figures before and after.
import { AgeDecryptError } from "./errors.js";

export interface AgeLimits {
  /** Bytes of the file as read (binary, or ASCII armor before decoding). */
  readonly maxFileBytes: number;
  /** Bytes of the textual header: the version line, the stanzas and the MAC line. */
  readonly maxHeaderBytes: number;
  /** Recipient stanzas in the header. */
  readonly maxStanzas: number;
  /** Wall-clock milliseconds for one file, from its first byte parsed to its last chunk opened. */
  readonly timeBudgetMs: number;
}

/**
 * The limits agenixd runs with. Real files stay far below them: `age`, rage and agenix write one
 * stanza per recipient (rage may add one "grease" stanza), and an agenix secret is encrypted to the
 * hosts and admins that need it, a few hundred recipients at the very most.
 *
 * - 1024 stanzas: several times the largest recipient list seen in practice; bounds the work an
 *   untagged X25519 identity does (one X25519 + HKDF + AEAD per stanza, ~0.2 ms under --no-opt).
 * - 2 MiB of header: 1024 stanzas of the largest kind age writes (mlkem768x25519, ~1.6 KB each;
 *   an ssh-rsa stanza for a 4096-bit key is ~0.7 KB).
 * - 64 MiB of file: agenix secrets are keys, tokens, passwords and small configuration files; the
 *   plaintext lives in RAM (ramfs, never swapped), so anything near this size is a mistake.
 * - 10 s per file: a real file takes ~1 ms; the budget is what bounds the one expensive case the
 *   other limits leave, ML-KEM stanzas (the pure-JS decapsulation costs ~50 ms under --no-opt, and
 *   every mlkem768x25519 stanza must be tried), while leaving a slow machine under boot load a
 *   hundredfold margin for every real file.
 */
export const DEFAULT_LIMITS: AgeLimits = Object.freeze({
  maxFileBytes: 64 * 1024 * 1024,
  maxHeaderBytes: 2 * 1024 * 1024,
  maxStanzas: 1024,
  timeBudgetMs: 10_000,
});

/** "64 MiB", "2 KiB" or "1000 bytes": a byte count as the limits are written. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

function formatMs(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/** What an identity calls between stanzas it tries: throws AgeDecryptError once the file's time is up. */
export interface Budget {
  check(): void;
}

/** Monotonic milliseconds. Not performance.now(): the `performance` global loads perf_hooks, ~1 ms of a plain bundle's start. */
function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/**
 * A file's time budget. The parsers are linear in bounded input, so a check between steps whose
 * own cost is bounded (a stanza tried, a chunk opened) is enough to stop a file soon after its
 * budget ends.
 */
export class TimeBudget implements Budget {
  readonly #limitMs: number;
  readonly #deadline: number;

  constructor(limitMs: number) {
    this.#limitMs = limitMs;
    this.#deadline = nowMs() + limitMs;
  }

  check(): void {
    if (nowMs() > this.#deadline) {
      const limit = formatMs(this.#limitMs);
      throw new AgeDecryptError(`decryption took more than ${limit} (limit ${limit} per file)`);
    }
  }
}
