// `agenixd check`: whether .age files are encrypted to a host's public keys, for a secrets
// repository's CI and for the NixOS build (nix/recipient-check.nix). Needs no private key and no root.
// `agenixd check --host`: whether this host's own identities open a manifest's secrets
// (src/host-check.ts), as root.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type FileCheck, type HostRecipient, RecipientError, checkFile, parseRecipient, renderCheck, summarize } from "./recipient-check.js";

export const CHECK_USAGE = `       agenixd check (--recipient KEY | --recipients-file FILE)... [--strict] [--json]
                     (FILE... | --secrets-json FILE)
       agenixd check --host [--manifest FILE] [--json]`;

export const CHECK_HELP = `  check      whether each .age FILE has a stanza for one of the host's public keys (OpenSSH
             ssh-ed25519/ssh-rsa lines, or age1… recipients), from the header alone, without
             any private key. X25519 and ML-KEM stanzas cannot be attributed: a file with no
             matching SSH stanza but such stanzas is "not checkable", a warning (an error
             with --strict). --recipients-file: one key per line, '#' comments.
             --secrets-json: [{"name": …, "file": …}], as the NixOS build check writes.
             exit 0: every file is for the host; 1: some file is not, or is invalid
             --host: as root, whether this host's identities (the manifest's identityPaths,
             plugins and sealed ones included) open each secret of the manifest (default: the
             one the live generation was made from), from the headers alone: the file key is
             unwrapped and checked, no plaintext is made, nothing is written.
             exit 0: every secret opens; 1: some secret does not`;

/** Bounds on what the command reads besides the .age files. */
const MAX_LIST_BYTES = 16 * 1024 * 1024;
const MAX_FILES = 100_000;

export interface CheckCommand {
  readonly kind: "check";
  readonly recipients: readonly string[];
  readonly recipientFiles: readonly string[];
  readonly files: readonly string[];
  readonly secretsJson?: string;
  readonly strict: boolean;
  readonly json: boolean;
}

export interface HostCheckCommand {
  readonly kind: "check-host";
  readonly manifest?: string;
  readonly json: boolean;
}

export function parseCheckCommand(argv: readonly string[]): CheckCommand | HostCheckCommand | { kind: "usage"; error: string } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        recipient: { type: "string", multiple: true, short: "r" },
        "recipients-file": { type: "string", multiple: true, short: "R" },
        "secrets-json": { type: "string" },
        strict: { type: "boolean" },
        json: { type: "boolean" },
        host: { type: "boolean" },
        manifest: { type: "string" },
      },
    });
  } catch (e) {
    return { kind: "usage", error: `check: ${(e as Error).message}` };
  }
  const { values, positionals } = parsed;
  if (values.host) {
    for (const option of ["recipient", "recipients-file", "secrets-json", "strict"] as const) {
      if (values[option] !== undefined) return { kind: "usage", error: `check --host takes the host's own identities: no --${option}` };
    }
    if (positionals.length > 0) return { kind: "usage", error: "check --host checks a manifest's secrets: no FILE arguments (use --manifest)" };
    if (values.manifest === "") return { kind: "usage", error: "--manifest must name a file" };
    return { kind: "check-host", ...(values.manifest === undefined ? {} : { manifest: values.manifest }), json: values.json ?? false };
  }
  if (values.manifest !== undefined) return { kind: "usage", error: "check: --manifest goes with --host" };
  const recipients = values.recipient ?? [];
  const recipientFiles = values["recipients-file"] ?? [];
  if (recipients.length === 0 && recipientFiles.length === 0) {
    return { kind: "usage", error: "check needs the host's public keys: --recipient KEY or --recipients-file FILE" };
  }
  if (positionals.length === 0 && values["secrets-json"] === undefined) return { kind: "usage", error: "check needs the .age files to check" };
  return {
    kind: "check",
    recipients,
    recipientFiles,
    files: positionals,
    ...(values["secrets-json"] === undefined ? {} : { secretsJson: values["secrets-json"] }),
    strict: values.strict ?? false,
    json: values.json ?? false,
  };
}

function readList(path: string): string {
  const data = readFileSync(path);
  if (data.length > MAX_LIST_BYTES) throw new Error(`${path} is larger than 16 MiB`);
  return data.toString("utf8");
}

function loadRecipients(command: CheckCommand): HostRecipient[] {
  const out: HostRecipient[] = [];
  for (const r of command.recipients) out.push(parseRecipient(r));
  for (const file of command.recipientFiles) {
    const lines = readList(file).split("\n");
    lines.forEach((line, i) => {
      const text = line.trim();
      if (text === "" || text.startsWith("#")) return;
      try {
        out.push(parseRecipient(text));
      } catch (e) {
        throw new RecipientError(`${file} line ${i + 1}: ${(e as Error).message}`);
      }
    });
  }
  if (out.length === 0) throw new RecipientError("no public keys given (the recipients files hold none)");
  return out;
}

function loadTargets(command: CheckCommand): { name: string; file: string }[] {
  const targets = command.files.map((file) => ({ name: file, file }));
  if (command.secretsJson !== undefined) {
    const list: unknown = JSON.parse(readList(command.secretsJson));
    if (!Array.isArray(list)) throw new Error(`${command.secretsJson}: expected a JSON array of {"name", "file"}`);
    for (const [i, entry] of list.entries()) {
      const { name, file } = (entry ?? {}) as { name?: unknown; file?: unknown };
      if (typeof name !== "string" || typeof file !== "string") throw new Error(`${command.secretsJson}: entry ${i} needs string "name" and "file"`);
      targets.push({ name, file });
    }
  }
  if (targets.length > MAX_FILES) throw new Error(`more than ${MAX_FILES} files to check`);
  return targets;
}

/** Runs the command; resolves to the exit status (0 all for the host, 1 not, 2 bad keys or lists). */
export function runCheck(command: CheckCommand, out: (s: string) => void, err: (s: string) => void): number {
  let recipients: HostRecipient[];
  let targets: { name: string; file: string }[];
  try {
    recipients = loadRecipients(command);
    targets = loadTargets(command);
  } catch (e) {
    err(`agenixd check: ${(e as Error).message}\n`);
    return 2;
  }
  const results: FileCheck[] = targets.map((t) => checkFile(t.name, t.file, recipients));
  const summary = summarize(results, recipients, command.strict);
  out(command.json ? `${JSON.stringify(summary, null, 2)}\n` : renderCheck(summary));
  return summary.ok ? 0 : 1;
}
