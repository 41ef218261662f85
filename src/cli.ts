// agenixd command line. Started by src/main.ts (the plain bundle) or src/snapshot.ts (the V8
// startup snapshot that the NixOS package runs).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { readManifest, ManifestError } from "./manifest.js";
import { activate, type ActivationResult, type Phase } from "./activate.js";
import { describeChange } from "./changes.js";
import { collectStatus, renderStatus, STATUS_EXIT } from "./status.js";
import { createLogger } from "./log.js";
import { loadNativeAddon, type NativeAddon } from "./native.js";
import { createNotifier } from "./notify.js";
import { CHECK_HELP, CHECK_USAGE, type CheckCommand, type HostCheckCommand, parseCheckCommand, runCheck } from "./check-command.js";
import { checkHost, renderHostCheck } from "./host-check.js";
import { readState } from "./state.js";
import { expandRuntimeDir, userDefaults, userHost } from "./user-host.js";
import { recordDryActivation, systemctlActive } from "./dry-activation.js";
import { systemctlPath } from "./units.js";
import { printOut, printErr } from "./output.js";

const USAGE = `usage: agenixd activate --manifest FILE [--phase all|users] [--dry-run] [--user]
       agenixd status [--manifest FILE] [--json] [--user]
${CHECK_USAGE}
       agenixd --help | --version

  activate   decrypt every secret of the manifest into a new generation and switch to it,
             then restart or reload the units of the secrets that changed
             --phase users: only the secrets needed before users are created
                            (hashedPasswordFile); every other secret of the current
                            generation is kept as it is
             --dry-run:     print which secrets and templates would be added, modified
                            and removed and which units would be restarted; write
                            nothing (also when NIXOS_ACTION=dry-activate; then the
                            running units it would restart or reload are also added to
                            switch-to-configuration's lists in /run/nixos, so that
                            its "would restart" summary names them)
  status     the live generation, each secret (path, owner, group, mode, size, last
             change, units) and the last activation's failures; secretsDir and
             secretsMountPoint from the manifest, else /run/agenix and /run/agenix.d
${CHECK_HELP}

  --user     a user's own secrets (the Home Manager module's agenixd.service in the user's
             manager): run as that user, write below $XDG_RUNTIME_DIR (a tmpfs of the user's
             own; no mount, no chown), restart units with systemctl --user; status defaults
             to $XDG_RUNTIME_DIR/agenix and $XDG_RUNTIME_DIR/agenix.d

agenixd must run as root, except with --user (and check, which needs no privilege, but
check --host does).
exit status: activate: 0 all secrets installed (or deferred until a plugin's socket), 1 a secret failed or activation failed
             (or not root); status: 0 healthy, 1 degraded, 3 no live generation;
             2 usage error`;

const DEFAULT_SECRETS_DIR = "/run/agenix";
const DEFAULT_MOUNT_POINT = "/run/agenix.d";

/** package.json's version: scripts/bundle.mjs defines it in both bundles. */
declare const AGENIXD_VERSION: string | undefined;

export type Command =
  | {
      readonly kind: "activate";
      readonly manifest: string;
      readonly phase: Phase;
      readonly dryRun: boolean;
      /** Run by switch-to-configuration dry-activate (NIXOS_ACTION): the units go into its lists too. */
      readonly dryActivation: boolean;
      readonly user?: true;
    }
  | { readonly kind: "status"; readonly manifest?: string; readonly json: boolean; readonly user?: true }
  | CheckCommand
  | HostCheckCommand
  | { readonly kind: "help" }
  | { readonly kind: "version" }
  | { readonly kind: "usage"; readonly error: string };

export function parseCommand(argv: readonly string[], env: NodeJS.ProcessEnv = {}): Command {
  if (argv[0] === "check") return parseCheckCommand(argv.slice(1));
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        manifest: { type: "string" },
        phase: { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean" },
        "dry-run": { type: "boolean" },
        json: { type: "boolean" },
        user: { type: "boolean" },
      },
    });
  } catch (e) {
    return { kind: "usage", error: parseArgsError(e as Error & { code?: string }) };
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  if (values.version) return { kind: "version" };
  const [command, ...extra] = positionals;
  if (command === undefined) return { kind: "usage", error: "no command given (expected activate or status)" };
  if (command !== "activate" && command !== "status") return { kind: "usage", error: `unknown command ${command}` };
  if (extra.length > 0) return { kind: "usage", error: `unexpected argument ${extra[0]}` };
  if (values.manifest === "") return { kind: "usage", error: "--manifest must name a file" };
  if (command === "status") {
    for (const option of ["phase", "dry-run"] as const) if (values[option] !== undefined) return { kind: "usage", error: `--${option} is an option of activate, not status` };
    return { kind: "status", ...(values.manifest === undefined ? {} : { manifest: values.manifest }), json: values.json ?? false, ...(values.user ? { user: true as const } : {}) };
  }
  if (values.json !== undefined) return { kind: "usage", error: "--json is an option of status, not activate" };
  if (values.manifest === undefined) return { kind: "usage", error: "--manifest is required" };
  const phase = values.phase ?? "all";
  if (phase !== "all" && phase !== "users") return { kind: "usage", error: `invalid --phase ${phase} (expected all or users)` };
  // switch-to-configuration's dry activation sets NIXOS_ACTION: whatever runs agenixd then, nothing is written.
  const dryActivation = env.NIXOS_ACTION === "dry-activate" && !values.user;
  const dryRun = (values["dry-run"] ?? false) || env.NIXOS_ACTION === "dry-activate";
  if (values.user && phase === "users") return { kind: "usage", error: "--phase users is the machine's (users are made at boot); a user's service has no such phase" };
  return { kind: "activate", manifest: values.manifest, phase, dryRun, dryActivation, ...(values.user ? { user: true as const } : {}) };
}

/** node:util's parseArgs messages, shortened to what went wrong. */
function parseArgsError(e: Error & { code?: string }): string {
  // "Unknown option '--bogus'. …", "Option '--manifest <value>' argument missing", "Option '-h, --help' does not take an argument"
  const option = /'(-[^']*)'/.exec(e.message)?.[1]?.split(/[\s,]+/).filter((w) => w.startsWith("-")).pop();
  if (option && e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option ${option}`;
  if (option && e.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") return /argument missing/.test(e.message) ? `${option} needs a value` : `${option} takes no value`;
  return e.message;
}

/**
 * Runs one command; resolves to the exit status.
 * addonBase: the file URL of a file in the installed package (dist/…), from which agenixd's addon is found.
 */
export async function main(argv: string[], addonBase: string | URL): Promise<number> {
  const command = parseCommand(argv, process.env);
  if (command.kind === "help") {
    printOut(`${USAGE}\n`);
    return 0;
  }
  if (command.kind === "version") {
    printOut(`agenixd ${packageVersion(addonBase)}\n`);
    return 0;
  }
  if (command.kind === "usage") {
    printErr(`agenixd: ${command.error}\n${USAGE}\n`);
    return 2;
  }
  // Reads public keys and headers only: no root, no addon.
  if (command.kind === "check") return runCheck(command, (t) => printOut(t), (t) => printErr(t));
  // Before anything is read or made: as another user agenixd could only half-work.
  const uid = process.geteuid!();
  const user = "user" in command && command.user === true;
  if (user && uid === 0) {
    printErr(`agenixd --user runs as the user whose secrets they are, not as root\n`);
    return 1;
  }
  if (!user && uid !== 0) {
    printErr(`agenixd must run as root (it runs as uid ${uid})\n`);
    return 1;
  }

  process.umask(0o077);
  let addon: NativeAddon | undefined;
  let addonFailure = "";
  try {
    // Before any key is read: no core file, and no ptrace or /proc/PID/mem for a process without
    // CAP_SYS_PTRACE. Without the addon there is no activation: it also holds the lock (src/lock.ts).
    const loaded = loadNativeAddon(addonBase);
    loaded.disableCoreDumps();
    addon = loaded;
  } catch (e) {
    addonFailure = `activation failed: ${(e as Error).message}`;
  }
  const log = createLogger(); // after the addon: it asks the addon whether stderr is a terminal
  if (!addon) {
    log.fatal({ cause: addonFailure }, addonFailure);
    return 1;
  }
  if (command.kind === "status") return status(command.manifest, command.json, user);
  if (command.kind === "check-host") return hostCheck(command);
  const notify = createNotifier(process.env, addon);
  try {
    const manifest = user ? readManifest(command.manifest, (j) => expandRuntimeDir(j)) : readManifest(command.manifest);
    const result = await activate(manifest, command.phase, { log, notify, ...(user ? { host: userHost() } : {}) }, { dryRun: command.dryRun, manifestPath: command.manifest });
    if (result.dryRun) printOut(dryRunReport(manifest.secretsDir, result));
    if (command.dryActivation) {
      try {
        await recordDryActivation(result.units, systemctlActive(systemctlPath()));
      } catch (e) {
        printErr(`agenixd: cannot add the units to switch-to-configuration's dry-activation lists: ${(e as Error).message}\n`);
        return 1;
      }
    }
    // A deferred secret (waiting for pcscd.socket, docs/plugins.md) is not a failure of this run.
    return result.failed.every((f) => f.waitsFor !== undefined) ? 0 : 1;
  } catch (e) {
    const message = e instanceof ManifestError ? e.message : `activation failed: ${(e as Error).message}`;
    log.fatal({ cause: message }, message);
    notify.status(message);
    return 1;
  }
}

/** What `activate --dry-run` prints: the switch report's lines, the units, the failures. */
export function dryRunReport(secretsDir: string, result: ActivationResult): string {
  const lines = [
    result.generation === undefined
      ? `dry run: no live generation at ${secretsDir}; every secret would be added and no unit restarted`
      : `dry run: against generation ${result.generation} (${secretsDir}), nothing written`,
  ];
  // "adding secret a" → "would add secret a"
  for (const change of result.changes) lines.push(`would ${describeChange(change).replace(/^(add|modify|remov)ing/, (_, stem: string) => (stem === "remov" ? "remove" : stem))}`);
  if (result.changes.length === 0 && result.generation !== undefined) lines.push("no secret would change");
  if (result.units.restart.length > 0) lines.push(`would restart: ${result.units.restart.join(", ")}`);
  if (result.units.reload.length > 0) lines.push(`would reload: ${result.units.reload.join(", ")}`);
  for (const f of result.failed) {
    lines.push(`would fail: ${f.subject ? `${f.subject} ` : ""}${f.name}: ${f.cause}${f.keptPrevious ? ` (previous ${f.subject === "template" ? "rendering" : "value"} kept)` : ""}`);
  }
  return `${lines.join("\n")}\n`;
}

/** `check --host`: the given manifest, or the one the live generation was made from. */
async function hostCheck(command: HostCheckCommand): Promise<number> {
  const manifestFile = command.manifest ?? readState(DEFAULT_MOUNT_POINT)?.manifest;
  if (manifestFile === undefined || manifestFile === "") {
    printErr(`agenixd check --host: no --manifest given, and ${DEFAULT_MOUNT_POINT} records no activation to take it from\n`);
    return 2;
  }
  let manifest;
  try {
    manifest = readManifest(manifestFile);
  } catch (e) {
    printErr(`agenixd check --host: ${(e as Error).message}\n`);
    return 2;
  }
  let check;
  try {
    check = await checkHost(manifest);
  } catch (e) {
    printErr(`agenixd check --host: ${(e as Error).message}\n`);
    return 1;
  }
  printOut(command.json ? `${JSON.stringify({ manifest: manifestFile, ...check }, null, 2)}\n` : renderHostCheck(manifestFile, check));
  return check.ok ? 0 : 1;
}

function status(manifestFile: string | undefined, json: boolean, user: boolean): number {
  let { secretsDir, secretsMountPoint: mountPoint } = user ? userDefaults() : { secretsDir: DEFAULT_SECRETS_DIR, secretsMountPoint: DEFAULT_MOUNT_POINT };
  if (manifestFile !== undefined) {
    try {
      ({ secretsDir, secretsMountPoint: mountPoint } = user ? readManifest(manifestFile, (j) => expandRuntimeDir(j)) : readManifest(manifestFile));
    } catch (e) {
      printErr(`agenixd: ${(e as Error).message}\n`);
      return 1;
    }
  }
  const s = collectStatus(secretsDir, mountPoint);
  printOut(json ? `${JSON.stringify(s, null, 2)}\n` : renderStatus(s));
  return STATUS_EXIT[s.health];
}

function packageVersion(addonBase: string | URL): string {
  if (typeof AGENIXD_VERSION === "string") return AGENIXD_VERSION;
  // tsc's build/src/ in a checkout (not bundled): the checkout's package.json.
  return (JSON.parse(readFileSync(new URL("../../package.json", addonBase), "utf8")) as { version: string }).version;
}
