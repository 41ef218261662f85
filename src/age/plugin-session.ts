// The client side of the age plugin state machine `identity-v1` (C2SP age-plugin.md, "Unwrapping
// with identity-v1"): one plugin process unwraps the file keys of many files at once. agenixd runs
// at boot with nobody to answer: `msg` is acknowledged and passed on, `confirm`, `request-public`
// and `request-secret` are refused with `fail`, so a plugin that needs a PIN or a touch gives up on
// the files that needed it. Bounded in time and bytes (PluginLimits, docs/limits.md): a plugin
// that hangs or floods is killed, and the session reports one cause.
import { childProcess } from "../child-process.js";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { PluginProtocolError, StanzaReader, encodeStanza } from "./plugin-wire.js";
import type { Stanza } from "./stanza.js";

export interface PluginLimits {
  /** Wall-clock milliseconds for one plugin process, from spawn to exit. */
  readonly timeoutMs: number;
  /** Bytes the plugin may write to stdout in one session. */
  readonly maxOutputBytes: number;
}

/**
 * 30 s: a TPM unseal or a YubiKey PIV operation takes well under a second; the rest is a slow
 * boot's margin. 4 MiB: a session writes one 16-byte file key (~60 bytes of stanza) per file and a
 * few messages; 4 MiB is two full age headers.
 */
export const DEFAULT_PLUGIN_LIMITS: PluginLimits = Object.freeze({ timeoutMs: 30_000, maxOutputBytes: 4 * 1024 * 1024 });

const FILE_KEY_BYTES = 16;
const MAX_MESSAGE_CHARS = 300;
const MAX_STDERR_BYTES = 4096;

export type FileAnswer = { readonly fileKey: Buffer } | { readonly error: string };

export interface SessionResult {
  /** By file index: a file key, or why this plugin could not unwrap that file. */
  readonly answers: Map<number, FileAnswer>;
  /** Why the session as a whole failed (for every file without an answer), if it did. */
  readonly failure?: string;
}

/** Plugin text made fit for a log line: control characters escaped, cut short. */
export function escapePluginText(text: string): string {
  let out = text.replace(/[\x00-\x1f\x7f-\x9f\\]/g, (c) => (c === "\\" ? "\\\\" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
  if (out.length > MAX_MESSAGE_CHARS) out = `${out.slice(0, MAX_MESSAGE_CHARS)}…`;
  return out;
}

function bodyText(stanza: Stanza): string {
  return escapePluginText(Buffer.from(stanza.body).toString("utf8"));
}

export interface SessionOptions {
  /** The plugin binary, by absolute path. */
  readonly program: string;
  /** The PATH the plugin runs with: the plugin directories, nothing else. */
  readonly path: string;
  /** The identities, as the Bech32 text of the identity file. */
  readonly identities: readonly string[];
  /** Each file's recipient stanzas, by file index. */
  readonly files: readonly (readonly Stanza[])[];
  readonly limits?: PluginLimits;
  /** A `msg`, `request-secret`, … of the plugin, escaped. */
  readonly onMessage?: (message: string) => void;
}

/** Runs one identity-v1 session. Never throws: a failure is the result's `failure`. */
export function runIdentitySession(options: SessionOptions): Promise<SessionResult> {
  const limits = options.limits ?? DEFAULT_PLUGIN_LIMITS;
  const answers = new Map<number, FileAnswer>();
  const identityErrors: string[] = [];
  const onMessage = options.onMessage ?? (() => {});

  return new Promise<SessionResult>((resolve) => {
    let settled = false;
    let phase2Done = false;
    let failure: string | undefined;
    const stderr: Buffer[] = [];
    let stderrBytes = 0;

    let child: ChildProcessWithoutNullStreams;
    try {
      child = childProcess().spawn(options.program, ["--age-plugin=identity-v1"], {
        cwd: "/",
        env: { PATH: options.path },
        stdio: ["pipe", "pipe", "pipe"],
        detached: true,
      });
    } catch (e) {
      resolve({ answers, failure: `could not be started (${(e as NodeJS.ErrnoException).code ?? "error"})` });
      return;
    }

    const kill = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    };
    const fail = (why: string) => {
      failure ??= why;
      kill();
    };
    // After the kill, "close" waits for stdout and stderr to close: a descendant that left the
    // process group could hold them open. A second timer ends the session regardless.
    let hardStop: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      fail(`did not finish within ${limits.timeoutMs} ms (limit)`);
      hardStop = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        finish();
      }, 1000);
    }, limits.timeoutMs);

    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(hardStop);
      if (failure === undefined && !phase2Done) failure = "exited before finishing the exchange";
      const tail = stderrTail(stderr);
      const detail = failure !== undefined && tail !== "" ? `${failure}; it said: ${tail}` : failure;
      const identityDetail = identityErrors.length > 0 ? identityErrors.join("; ") : undefined;
      resolve({ answers, failure: detail ?? identityDetail });
    };

    child.on("error", (e: NodeJS.ErrnoException) => {
      fail(`could not be started (${e.code ?? "error"})`);
      if (child.pid === undefined) setImmediate(finish); // never started: no "close" may follow
    });
    child.on("close", finish);
    child.stdin!.on("error", () => {}); // EPIPE: the plugin exited; "close" reports it
    child.stderr!.on("data", (chunk: Buffer) => {
      if (stderrBytes < MAX_STDERR_BYTES) stderr.push(chunk.subarray(0, MAX_STDERR_BYTES - stderrBytes));
      stderrBytes += chunk.length;
    });

    const reader = new StanzaReader(limits.maxOutputBytes);
    const reply = (args: string[], body?: Uint8Array) => {
      if (!child.stdin!.writable) return;
      child.stdin!.write(encodeStanza(args, body));
    };
    const fileCount = options.files.length;

    const handle = (stanza: Stanza) => {
      if (phase2Done) throw new PluginProtocolError("wrote after done");
      const [command, ...args] = stanza.args;
      switch (command) {
        case "msg":
          onMessage(bodyText(stanza));
          return reply(["ok"]);
        case "confirm":
        case "request-public":
        case "request-secret":
          onMessage(`${command} refused (no one can answer at boot): ${bodyText(stanza)}`);
          return reply(["fail"]);
        case "file-key": {
          const index = fileIndex(args[0], fileCount);
          if (args.length !== 1 || index === undefined) throw new PluginProtocolError("sent a malformed file-key");
          if (stanza.body.length !== FILE_KEY_BYTES) throw new PluginProtocolError("sent a file key of the wrong length");
          if (answers.has(index) && "fileKey" in answers.get(index)!) throw new PluginProtocolError("sent two file keys for one file");
          answers.set(index, { fileKey: Buffer.from(stanza.body) });
          stanza.body.fill(0);
          return reply(["ok"]);
        }
        case "error": {
          const message = bodyText(stanza);
          if (args[0] === "stanza") {
            const index = fileIndex(args[1], fileCount);
            if (index === undefined) throw new PluginProtocolError("sent an error for a file it was not given");
            if (!answers.has(index)) answers.set(index, { error: message });
          } else if (args[0] === "identity") {
            identityErrors.push(`identity ${args[1] ?? "?"}: ${message}`);
          } else {
            identityErrors.push(message);
          }
          onMessage(`error: ${message}`);
          return reply(["ok"]);
        }
        case "done":
          phase2Done = true;
          child.stdin!.end();
          return;
        default:
          return reply(["unsupported"]);
      }
    };

    child.stdout!.on("data", (chunk: Buffer) => {
      if (failure !== undefined) return;
      try {
        for (const stanza of reader.push(chunk)) handle(stanza);
      } catch (e) {
        if (e instanceof PluginProtocolError) fail(`broke the plugin protocol: it ${e.message}`);
        else fail(`failed: ${(e as Error).message}`);
      }
    });

    // Phase 1: every identity, then every stanza of every file, then done.
    let phase1 = "";
    for (const identity of options.identities) phase1 += encodeStanza(["add-identity", identity]);
    options.files.forEach((stanzas, index) => {
      for (const s of stanzas) phase1 += encodeStanza(["recipient-stanza", String(index), ...s.args], s.body);
    });
    phase1 += encodeStanza(["done"]);
    child.stdin!.write(phase1);
  });
}

function fileIndex(text: string | undefined, count: number): number | undefined {
  if (text === undefined || !/^(0|[1-9][0-9]{0,8})$/.test(text)) return undefined;
  const n = Number(text);
  return n < count ? n : undefined;
}

function stderrTail(chunks: Buffer[]): string {
  const text = Buffer.concat(chunks).toString("utf8").trim();
  const lines = text.split("\n");
  return escapePluginText(lines.slice(-3).join(" | "));
}

