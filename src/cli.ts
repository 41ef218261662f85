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

/**
 * Runs one command; resolves to the exit status.
 * addonBase: the file URL of a file in the installed package (dist/…), from which the sd-notify addon is found.
 */
export async function main(argv: string[], addonBase: string | URL): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        manifest: { type: "string" },
        phase: { type: "string", default: "all" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    process.stderr.write(`agenixd: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals[0] !== "activate" || positionals.length !== 1 || !values.manifest || !["all", "users"].includes(values.phase!)) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }

  process.umask(0o077);
  const log = createLogger();
  const notify = createNotifier(process.env, addonBase);
  try {
    const manifest = readManifest(values.manifest);
    const result = await activate(manifest, values.phase as Phase, { log, notify });
    return result.failed.length === 0 ? 0 : 1;
  } catch (e) {
    const message = e instanceof ManifestError ? e.message : `activation failed: ${(e as Error).message}`;
    log.fatal({ cause: message }, message);
    notify.status(message);
    return 1;
  }
}
