// Scenarios are data (vm-tests/scenarios/<name>.json), shared by this harness and by the NixOS
// VM tests (vm-tests/*.nix), which read the same file with builtins.fromJSON.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./cache.js";

export interface SecretDef {
  /** Plaintext the .age file is made from. */
  content: string;
  name?: string;
  path?: string;
  mode?: string;
  owner?: string;
  group?: string;
  symlink?: boolean;
  /** File name of the ciphertext (without .age); the attribute name by default. */
  sourceName?: string;
  /** Encrypted to a key the machine does not have. */
  undecryptable?: boolean;
  /** Units restarted / reloaded when the secret changes (age.secrets.<n>.restartUnits / reloadUnits). */
  restartUnits?: string[];
  reloadUnits?: string[];
  /** One trailing newline dropped where substituted into a template. */
  trim?: boolean;
  /** Published in /run/credstore (default: the configuration's `credstore`). */
  credential?: boolean;
  /** Encrypted to the scenario's plugin identity (scenario.plugin) instead of the host key. */
  toPlugin?: boolean;
  /**
   * The ciphertext is this file on the machine's disk (age.secrets.<n>.file as a string, read at
   * activation), made by the scenario's steps; `content` is what they encrypt into it. For
   * recipients only the machine knows, as a sealed identity's (scenario.sealedIdentity).
   */
  machineFile?: string;
}

/**
 * age.templates.<n>. `content` names secrets as `{{attr}}`: config.age.placeholder.<attr> in
 * NixOS, the same placeholder string here (computed by nix/manifest.nix, through ./system.nix).
 */
export interface TemplateDef {
  content: string;
  name?: string;
  path?: string;
  mode?: string;
  owner?: string;
  group?: string;
  symlink?: boolean;
  restartUnits?: string[];
  reloadUnits?: string[];
}

export interface UserDef {
  uid: number;
  group: string;
  gid: number;
  /** A normal user (NixOS's isNormalUser); systemd-sysusers refuses those, so the harness does too. */
  isNormalUser?: boolean;
  /** Home directory (default /var/empty). */
  home?: string;
  /** Can log in: bash as the shell (a system user's default shell is nologin). */
  loginShell?: boolean;
  /** Attribute name of the secret that is this user's hashedPasswordFile. */
  hashedPasswordSecret?: string;
}

export interface SpecialisationDef {
  secrets?: Record<string, SecretDef>;
  /** Base secrets this configuration does not declare (attribute names). */
  removeSecrets?: string[];
  /** Each template given replaces the base one. */
  templates?: Record<string, TemplateDef>;
  /** age.credstore.enable for this configuration (default: the scenario's). */
  credstore?: boolean;
  /** age.credstore.encrypted for this configuration (default: the scenario's). */
  credstoreEncrypted?: boolean;
  /**
   * The same agenixd built at another store path (as after a package update): the unit's
   * ExecStart changes, the manifest does not.
   */
  rebuiltPackage?: boolean;
  /** The test plugin's behaviour in this configuration (default: the base's). */
  pluginMode?: string;
}

export interface ServiceDef {
  description?: string;
  wantedBy?: string[];
  /** [Unit] settings (DefaultDependencies, After, Before, ...), one line each. */
  unitConfig?: Record<string, string | boolean>;
  serviceConfig?: Record<string, string | boolean>;
  script: string;
}

/** A Home Manager user's `age.*` (nix/home-manager.nix) and user units, and the home configurations it switches between. */
export interface HomeDef {
  /** One of the scenario's users (with a home directory), lingering so that its manager starts at boot. */
  user: string;
  /** age.uid: absolute /run/user/<uid> paths; absent, paths keep agenix's literal ${XDG_RUNTIME_DIR}. */
  ageUid?: boolean;
  /** Owner and group are the user's: the Home Manager module has no such options. */
  secrets: Record<string, Omit<SecretDef, "owner" | "group" | "credential">>;
  templates?: Record<string, Omit<TemplateDef, "owner" | "group">>;
  /** systemd.user.services.<name>: `script` runs as the user, in the user's manager. */
  services?: Record<string, ServiceDef>;
  /** Other home configurations (`homeSwitch` activates one); each secret or template given replaces the base one. */
  configurations?: Record<string, { secrets?: HomeDef["secrets"]; templates?: HomeDef["templates"] }>;
}

export type Step =
  | { op: "start" }
  | { op: "waitForUnit"; unit: string }
  | { op: "succeed"; command: string; equals?: string; contains?: string | string[] }
  | { op: "fail"; command: string }
  | { op: "waitUntilSucceeds"; command: string }
  | {
      op: "assertSecret";
      path: string;
      content: string;
      mode: string;
      owner: string;
      group: string;
      uid: number;
      gid: number;
      symlink?: boolean;
    }
  | {
      op: "switch";
      to: string;
      /** switch-to-configuration's action: `test` (default) or `dry-activate` (nixos-rebuild dry-activate). */
      action?: "test" | "dry-activate";
      mayFail?: boolean;
      /** What its output (stdout and stderr) must contain. */
      contains?: string | string[];
    }
  /** `home-manager switch` to one of home.configurations ("base" is the first). */
  | { op: "homeSwitch"; to: string; mayFail?: boolean }
  | { op: "reboot" }
  | { op: "crash" }
  | { op: "shutdown" }
  | { op: "repeat"; times: number; steps: Step[] }
  | { op: "checkPassword"; user: string; password: string };

export interface Scenario {
  name: string;
  description: string;
  /** Also run on the QEMU backend. */
  qemu?: boolean;
  users?: Record<string, UserDef>;
  secrets: Record<string, SecretDef>;
  templates?: Record<string, TemplateDef>;
  /** age.credstore.enable: every secret is also a systemd credential unless it says otherwise. */
  credstore?: boolean;
  /** age.credstore.encrypted: credentials are sealed into /run/credstore.encrypted (issue 24). */
  credstoreEncrypted?: boolean;
  /** age.credstore.encryptWith, in every configuration (default "auto", the module's). */
  encryptWith?: string;
  /** age.dryActivate, in every configuration: `switch` with `action: "dry-activate"` runs agenixd's dry run. */
  dryActivate?: boolean;
  /** Other configurations (NixOS specialisations): each secret given replaces the base one. */
  specialisations?: Record<string, SpecialisationDef>;
  services?: Record<string, ServiceDef>;
  home?: HomeDef;
  /**
   * An age plugin in age.plugins: test/helpers/age-plugin-test.ts as `age-plugin-<name>` (it
   * unwraps X25519 stanzas with the scalar its identity wraps), with `mode` its behaviour
   * ("normal", or "pin": it asks for a PIN, which agenixd refuses). Its identity file is the first
   * of age.identityPaths. Every start appends a line to /run/age-plugin-starts.
   */
  plugin?: { name: string; mode?: string };
  /**
   * services.pcscd: pcsc-lite's pcscd.socket (ListenStream=/run/pcscd/pcscd.comm, wanted by
   * sockets.target) with a stand-in pcscd.service that never answers, and the scenario's plugin in
   * age.pcscdPlugins (mode `socket=/run/pcscd/pcscd.comm` makes it fail without the socket, as
   * age-plugin-yubikey does without pcscd).
   */
  pcscd?: boolean;
  /**
   * A LUKS data volume (a disk of its own, QEMU only) in /etc/crypttab as `<volume> UUID=<uuid>
   * <keySecret's path> luks,readonly`: systemd-cryptsetup@<volume>.service opens it at boot with
   * the key agenixd installed. The volume's key is the secret's base content. Read-only, so that
   * the NixOS test can attach the image from the store as it is.
   */
  luks?: { volume: string; uuid: string; keySecret: string };
  /** Needs what only the QEMU backend has (its own kernel: dm-crypt, a TPM); nspawn does not run it. */
  qemuOnly?: boolean;
  /**
   * A host identity sealed by systemd-creds: `path` (ending in .cred) is the first of
   * age.identityPaths, before the SSH host key. The fixture makes no such file: the steps seal
   * one inside the machine, as docs/module.md tells users, with the machine's own credential key
   * or TPM. The machine has Go age's `age` and `age-keygen` (environment.systemPackages =
   * [ pkgs.age ] in the VM test).
   */
  sealedIdentity?: { path: string };
  /** A TPM 2.0 (swtpm) attached to the machine: QEMU only (virtualisation.tpm.enable in the VM test). */
  tpm?: boolean;
  steps: Step[];
}

export const scenariosDir = join(repoRoot, "vm-tests", "scenarios");

export function scenarioNames(): string[] {
  return readdirSync(scenariosDir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -".json".length))
    .sort();
}

export function loadScenario(name: string): Scenario {
  const text = readFileSync(join(scenariosDir, `${name}.json`), "utf8");
  return { name, ...(JSON.parse(text) as Omit<Scenario, "name">) };
}

export interface Configuration {
  secrets: Record<string, SecretDef>;
  templates: Record<string, TemplateDef>;
  credstore: boolean;
  credstoreEncrypted: boolean;
  encryptWith: string;
  dryActivate: boolean;
  rebuiltPackage: boolean;
  /** The plugin's mode, or null without scenario.plugin. */
  pluginMode: string | null;
}

/** The base configuration is named "base"; the others are the specialisations. */
export function configurations(s: Scenario): Record<string, Configuration> {
  const base: Configuration = {
    secrets: s.secrets,
    templates: s.templates ?? {},
    credstore: s.credstore ?? false,
    credstoreEncrypted: s.credstoreEncrypted ?? false,
    encryptWith: s.encryptWith ?? "auto",
    dryActivate: s.dryActivate ?? false,
    rebuiltPackage: false,
    pluginMode: s.plugin ? (s.plugin.mode ?? "normal") : null,
  };
  const result: Record<string, Configuration> = { base };
  for (const [name, spec] of Object.entries(s.specialisations ?? {})) {
    const secrets = { ...base.secrets, ...spec.secrets };
    for (const attr of spec.removeSecrets ?? []) {
      if (!(attr in secrets)) throw new Error(`${s.name}: specialisation ${name} removes ${attr}, which is no secret of the scenario`);
      delete secrets[attr];
    }
    result[name] = {
      secrets,
      templates: { ...base.templates, ...spec.templates },
      credstore: spec.credstore ?? base.credstore,
      credstoreEncrypted: spec.credstoreEncrypted ?? base.credstoreEncrypted,
      encryptWith: base.encryptWith,
      dryActivate: base.dryActivate,
      rebuiltPackage: spec.rebuiltPackage ?? false,
      pluginMode: base.pluginMode === null ? null : (spec.pluginMode ?? base.pluginMode),
    };
  }
  return result;
}

/** The home configurations of a scenario's Home Manager user: "base" and the others, each complete. */
export function homeConfigurations(home: HomeDef): Record<string, { secrets: HomeDef["secrets"]; templates: NonNullable<HomeDef["templates"]> }> {
  const base = { secrets: home.secrets, templates: home.templates ?? {} };
  const result: Record<string, typeof base> = { base };
  for (const [name, c] of Object.entries(home.configurations ?? {})) {
    result[name] = { secrets: { ...base.secrets, ...c.secrets }, templates: { ...base.templates, ...c.templates } };
  }
  return result;
}
