// agenixd command line. Started by src/main.ts (the ES module bundle) or src/snapshot.ts (the V8
// startup snapshot that the NixOS package runs).
import { parseArgs } from "node:util";
import { readManifest, ManifestError } from "./manifest.js";
import { activate, type Phase } from "./activate.js";
import { createLogger } from "./log.js";
import { createNotifier } from "./notify.js";

const USAGE = `usage: agenixd activate --manifest FILE [--phase all|users]

  activate   decrypt every secret of the manifest into a new generation and switch to it
             --phase users: only the secrets needed before users are created
                            (hashedPasswordFile); every other secret of the current
                            generation is kept as it is

exit status: 0 all secrets installed, 1 a secret failed or activation failed, 2 usage error`;

export type Command =
  | { readonly kind: "activate"; readonly manifest: string; readonly phase: Phase }
  | { readonly kind: "help" }
  | { readonly kind: "usage"; readonly error?: string };

export function parseCommand(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        manifest: { type: "string" },
        phase: { type: "string", default: "all" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    return { kind: "usage", error: (e as Error).message };
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  const phase = values.phase;
  if (positionals[0] !== "activate" || positionals.length !== 1 || !values.manifest || (phase !== "all" && phase !== "users")) {
    return { kind: "usage" };
  }
  return { kind: "activate", manifest: values.manifest, phase };
}

/**
 * Runs one command; resolves to the exit status.
 * addonBase: the file URL of a file in the installed package (dist/…), from which the sd-notify addon is found.
 */
export async function main(argv: string[], addonBase: string | URL): Promise<number> {
  const command = parseCommand(argv);
  if (command.kind === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command.kind === "usage") {
    process.stderr.write(`${command.error ? `agenixd: ${command.error}\n` : ""}${USAGE}\n`);
    return 2;
  }

  process.umask(0o077);
  const log = createLogger();
  const notify = createNotifier(process.env, addonBase);
  try {
    const manifest = readManifest(command.manifest);
    const result = await activate(manifest, command.phase, { log, notify });
    return result.failed.length === 0 ? 0 : 1;
  } catch (e) {
    const message = e instanceof ManifestError ? e.message : `activation failed: ${(e as Error).message}`;
    log.fatal({ cause: message }, message);
    notify.status(message);
    return 1;
  }
}
