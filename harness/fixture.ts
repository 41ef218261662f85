// The files a scenario adds to the Debian root: test host keys, ciphertexts at /nix/store paths,
// and one NixOS-like toplevel per configuration (/etc/agenixd-harness/configurations/<name>)
// holding the manifest's unit files as nix/manifest.nix and nix/unit.nix produce them (evaluated
// by ./system.nix), plus the pieces of NixOS those units rely on: sysinit-reactivation.target,
// sysusers with password credentials, the units of the scenario's services, NixOS's default
// service PATH (which has no mount(8)), and switch-to-configuration (./switch.ts).
//
// A systemd generator links the current configuration's units into the search path, as NixOS's
// /etc/systemd/system: the booted "base" at every boot, the one /run/current-system points to
// after a switch. Nothing is done by activation scripts: the machines boot as under nixos-init.
// A scenario's Home Manager user gets its part from ./home-fixture.ts.
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ageEncrypt, generateSshKey } from "../test/helpers/age-cli.js";
import { pluginKey } from "../test/helpers/age-plugins.js";
import { repoRoot } from "./cache.js";
import { evalHarnessNix } from "./nix-eval.js";
import { runChecked } from "./process.js";
import { renderLauncher } from "../scripts/launch.js";
import { buildHomeFixture } from "./home-fixture.js";
import { configurations, type Scenario, type SecretDef } from "./scenario.js";
import { configurationsDir, currentSystem } from "./switch.js";

/** Where the built agenixd lives inside the machine (repo's dist/ and node_modules/ below it). */
export const agenixdRoot = "/opt/agenixd";
const agenixdExe = `${agenixdRoot}/bin/agenixd`;
/** The same agenixd "rebuilt" at another path, for configurations with `rebuiltPackage`. */
const rebuiltAgenixdExe = "/opt/agenixd-rebuilt/bin/agenixd";
const hostKeyPath = "/etc/ssh/ssh_host_ed25519_key";
/** systemctl, given to the unit by absolute path as nix/module.nix gives systemd.package's. */
const systemctlPath = "/usr/bin/systemctl";
/**
 * NixOS's default PATH for services (coreutils, findutils, grep, sed, systemd; no util-linux):
 * a directory of links to Debian's programs of those packages.
 */
const nixosServicePath = "/usr/lib/agenixd-harness/service-path";
const nixosServicePathPackages = ["coreutils", "findutils", "grep", "sed", "systemd"];
const unitsOf = (toplevel: string) => join(toplevel, "etc/systemd/system");

interface EvaluatedConfiguration {
  manifestPath: string;
  manifest: unknown;
  /** Store path -> text: the templates' texts the manifest names. */
  storeFiles: Record<string, string>;
  /** The toplevel's dry-activate script (age.dryActivate), or null. */
  dryActivate: string | null;
  services: Record<string, { wantedBy: string[]; requiredBy: string[]; aliases: string[] }>;
  unitFiles: Record<string, string>;
}

/**
 * Writes the scenario's layer into `dir` (which must be empty or absent). `debianRoot` is the
 * root it will lie on (read for its package lists). Keys are made fresh for each run: nothing
 * secret is cached.
 */
export async function buildFixture(scenario: Scenario, dir: string, debianRoot: string): Promise<{ disks: string[] }> {
  mkdirSync(dir, { recursive: true });
  const at = (p: string) => join(dir, p.replace(/^\//, ""));

  const sshDir = at("/etc/ssh");
  mkdirSync(sshDir, { recursive: true });
  const host = generateSshKey(sshDir, "ed25519");
  chmodSync(host.privatePath, 0o600);
  const scratch = mkdtempSync(join(dir, "..", "stranger-"));
  const stranger = generateSshKey(scratch, "ed25519", 0, "stranger");
  rmSync(scratch, { recursive: true, force: true });

  const storeFile = (name: string, bytes: Buffer | string): string => {
    const hash = createHash("sha256").update(bytes).digest("hex").slice(0, 32);
    const path = `/nix/store/${hash}-${name}`;
    mkdirSync(dirname(at(path)), { recursive: true });
    writeFileSync(at(path), bytes, { mode: 0o444 });
    return path;
  };
  const plugin = scenario.plugin ? writePlugin(scenario.plugin.name, at, storeFile, dir) : undefined;
  const encrypt = (attr: string, def: SecretDef): string => {
    if (def.machineFile !== undefined) {
      if (def.toPlugin || def.undecryptable) throw new Error(`${scenario.name}: secret ${attr} has a machineFile, made by the steps: toPlugin and undecryptable do not apply`);
      return def.machineFile;
    }
    if (def.toPlugin && !plugin) throw new Error(`${scenario.name}: secret ${attr} is toPlugin, but the scenario has no plugin`);
    const recipient = def.undecryptable ? stranger.recipient : def.toPlugin ? plugin!.recipient : host.recipient;
    return storeFile(`${def.sourceName ?? attr}.age`, ageEncrypt(def.content, [recipient]));
  };

  const users = Object.fromEntries(
    Object.entries(scenario.users ?? {}).map(([name, u]) => [
      name,
      { group: u.group, ...(u.hashedPasswordSecret ? { hashedPasswordSecret: u.hashedPasswordSecret } : {}) },
    ]),
  );
  const machine = {
    systemctl: systemctlPath,
    path: nixosServicePath,
    userManagement: "sysusers",
    identityPaths: [...(scenario.sealedIdentity ? [scenario.sealedIdentity.path] : []), ...(plugin ? [plugin.identityPath] : []), hostKeyPath],
    users,
    earlyServices: Object.entries(scenario.services ?? {}).filter(([, s]) => s.unitConfig?.DefaultDependencies === false).map(([name]) => `${name}.service`),
    configurations: Object.fromEntries(
      Object.entries(configurations(scenario)).map(([name, cfg]) => [
        name,
        {
          agenixd: cfg.rebuiltPackage ? rebuiltAgenixdExe : agenixdExe,
          credstore: cfg.credstore,
          credstoreEncrypted: cfg.credstoreEncrypted,
          encryptWith: cfg.encryptWith,
          dryActivate: cfg.dryActivate,
          plugins: cfg.pluginMode === null ? [] : [plugin!.packageFor(cfg.pluginMode)],
          pcscdPlugins: scenario.pcscd && scenario.plugin ? [scenario.plugin.name] : [],
          templates: cfg.templates,
          secrets: Object.fromEntries(
            Object.entries(cfg.secrets).map(([attr, def]) => {
              const { content: _c, sourceName: _s, undecryptable: _u, toPlugin: _p, machineFile: _m, ...options } = def;
              return [attr, { ...options, file: encrypt(attr, def) }];
            }),
          ),
        },
      ]),
    ),
  };
  const evaluated = await evalHarnessNix<Record<string, EvaluatedConfiguration>>("system.nix", machine);
  if (!evaluated.base) throw new Error("no base configuration evaluated");

  for (const [name, cfg] of Object.entries(evaluated)) {
    mkdirSync(dirname(at(cfg.manifestPath)), { recursive: true });
    writeFileSync(at(cfg.manifestPath), JSON.stringify(cfg.manifest), { mode: 0o444 });
    for (const [path, text] of Object.entries(cfg.storeFiles)) {
      mkdirSync(dirname(at(path)), { recursive: true });
      writeFileSync(at(path), text, { mode: 0o444 });
    }
    const toplevel = at(join(configurationsDir, name));
    // switch-to-configuration dry-activate runs <toplevel>/dry-activate, as NixOS's does.
    if (cfg.dryActivate !== null) {
      mkdirSync(toplevel, { recursive: true });
      writeFileSync(join(toplevel, "dry-activate"), cfg.dryActivate, { mode: 0o755 });
    }
    const units = unitsOf(toplevel);
    writeUnits(cfg, units);
    writeNixosUnits(scenario, units, evaluated.base);
  }
  await buildHomeFixture(scenario, { at, storeFile, strangerRecipient: stranger.recipient, agenixdExe, systemctl: systemctlPath });
  writeGenerator(dir);
  writeSwitch(dir);
  writeSysusers(scenario, dir);
  writeServiceScripts(scenario, dir);
  writeServicePath(dir, debianRoot);

  mkdirSync(at("/var/log/journal"), { recursive: true });
  // The package's launcher (scripts/agenixd-launcher.sh): the startup snapshot run by the node that
  // built it, or the plain bundle when node refuses the snapshot, as it does under QEMU, whose TCG
  // CPU has other features than the host that built it (so the QEMU scenarios boot through the
  // fallback). No PATH prefix: the unit names mount(8) itself.
  const wrapper = renderLauncher({ shell: "/bin/sh", node: "/usr/local/bin/node", dist: `${agenixdRoot}/dist` });
  for (const exe of [agenixdExe, rebuiltAgenixdExe]) {
    mkdirSync(dirname(at(exe)), { recursive: true });
    writeFileSync(at(exe), wrapper, { mode: 0o755 });
  }
  // `agenixd status` in the steps: the package on the system PATH, as the VM tests put it in
  // environment.systemPackages.
  mkdirSync(at("/usr/local/bin"), { recursive: true });
  symlinkSync(agenixdExe, at("/usr/local/bin/agenixd"));
  writeFileSync(at("/etc/hostname"), `${scenario.name}\n`);
  if (scenario.sealedIdentity) {
    if (!scenario.sealedIdentity.path.endsWith(".cred")) throw new Error(`${scenario.name}: sealedIdentity.path must end in .cred`);
    // The steps seal an identity and encrypt secrets inside the machine with Go age, as a user
    // would; Debian 12's age is the same program, taken from this runner rather than the image.
    for (const tool of ["age", "age-keygen"]) copyFileSync(`/usr/bin/${tool}`, at(`/usr/local/bin/${tool}`));
  }
  return { disks: scenario.luks ? [await writeLuksVolume(scenario, at, join(dir, ".."))] : [] };
}

/**
 * scenario.luks: a LUKS2 image (made here: formatting needs no device mapper) whose only key is
 * the key secret's content, and the crypttab line that opens it with the installed secret.
 * PBKDF2 with few iterations: Argon2's memory-hard default would take minutes under TCG.
 */
async function writeLuksVolume(scenario: Scenario, at: (p: string) => string, scratchDir: string): Promise<string> {
  const { volume, uuid, keySecret } = scenario.luks!;
  const secret = scenario.secrets[keySecret];
  if (!secret) throw new Error(`${scenario.name}: luks.keySecret ${keySecret} is no secret`);
  const image = join(scratchDir, `luks-${volume}.img`);
  const keyFile = join(scratchDir, `luks-${volume}.key`);
  writeFileSync(image, "");
  truncateSync(image, 32 * 1024 * 1024);
  writeFileSync(keyFile, secret.content, { mode: 0o600 });
  try {
    await runChecked(["cryptsetup", "luksFormat", "--batch-mode", "--disable-locks", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--uuid", uuid, image, keyFile]);
  } finally {
    rmSync(keyFile, { force: true });
  }
  const keyPath = secret.path ?? `/run/agenix/${secret.name ?? keySecret}`;
  writeFileSync(at("/etc/crypttab"), `${volume} UUID=${uuid} ${keyPath} luks,readonly\n`);
  return image;
}

/**
 * scenario.plugin: its identity file (root's, 0600, in /etc/age) and, per mode, a package in the
 * store whose bin/age-plugin-<name> runs test/helpers/age-plugin-test.ts with the machine's node.
 */
function writePlugin(name: string, at: (p: string) => string, storeFile: (name: string, bytes: Buffer | string) => string, dir: string) {
  const scratch = mkdtempSync(join(dir, "..", "plugin-"));
  const key = pluginKey(scratch, name);
  const identityPath = `/etc/age/${name}.identity`;
  mkdirSync(at("/etc/age"), { recursive: true, mode: 0o700 });
  copyFileSync(key.identityPath, at(identityPath));
  chmodSync(at(identityPath), 0o600);
  rmSync(scratch, { recursive: true, force: true });
  const program = storeFile("age-plugin-test.mjs", readFileSync(join(repoRoot, "build", "test", "helpers", "age-plugin-test.js")));
  const packages = new Map<string, string>();
  return {
    recipient: key.recipient,
    identityPath,
    packageFor(mode: string): string {
      const known = packages.get(mode);
      if (known) return known;
      const hash = createHash("sha256").update(`${name} ${mode}`).digest("hex").slice(0, 32);
      const pkg = `/nix/store/${hash}-age-plugin-${name}-${mode.replace(/[^A-Za-z0-9._+-]/g, "_")}`;
      mkdirSync(at(`${pkg}/bin`), { recursive: true });
      writeFileSync(at(`${pkg}/bin/age-plugin-${name}`), `#!/bin/sh\nexec /usr/local/bin/node ${program} ${mode} /run/age-plugin-starts "$@"\n`, { mode: 0o555 });
      packages.set(mode, pkg);
      return pkg;
    },
  };
}

/** Unit files plus the links NixOS makes for wantedBy / requiredBy / aliases. */
function writeUnits(cfg: EvaluatedConfiguration, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(cfg.unitFiles)) {
    writeFileSync(join(dir, file), text);
    const service = cfg.services[file.replace(/\.service$/, "")];
    if (!service) continue;
    for (const [suffix, targets] of [[".wants", service.wantedBy], [".requires", service.requiredBy]] as const) {
      for (const target of targets) link(`../${file}`, join(dir, target + suffix, file));
    }
    for (const alias of service.aliases) symlinkSync(file, join(dir, alias));
  }
}

function link(target: string, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  symlinkSync(target, path);
}

/**
 * The NixOS units agenixd's units meet: sysinit-reactivation.target (which switch-to-configuration
 * restarts), systemd-sysusers.service as nixos/modules/system/boot/systemd/sysusers.nix sets it up
 * (run at every boot, password files as credentials, required by sysinit-reactivation.target),
 * and the scenario's services.
 */
function writeNixosUnits(scenario: Scenario, dir: string, base: EvaluatedConfiguration): void {
  writeFileSync(join(dir, "sysinit-reactivation.target"), "[Unit]\nDescription=Reactivate sysinit units\n");

  const manifest = base.manifest as { secrets: { name: string; path: string }[] };
  const credentials: string[] = [];
  for (const [name, u] of Object.entries(scenario.users ?? {})) {
    if (!u.hashedPasswordSecret) continue;
    const secretName = scenario.secrets[u.hashedPasswordSecret]?.name ?? u.hashedPasswordSecret;
    const secret = manifest.secrets.find((s) => s.name === secretName);
    if (!secret) throw new Error(`${scenario.name}: no secret ${u.hashedPasswordSecret} for ${name}'s password`);
    credentials.push(`LoadCredential=passwd.hashed-password.${name}:${secret.path}\n`);
  }
  const sysusersConf = sysusersLines(scenario);
  const trigger = createHash("sha256").update(sysusersConf).digest("hex").slice(0, 32);
  writeDropIn(dir, "systemd-sysusers.service", "nixos.conf",
    // Debian runs sysusers only when /usr is newer than /etc; NixOS clears the condition.
    `[Unit]\nConditionNeedsUpdate=\nBefore=sysinit-reactivation.target\nX-Restart-Triggers=${trigger}\n\n[Service]\n${credentials.join("")}`);
  link("/usr/lib/systemd/system/systemd-sysusers.service", join(dir, "sysinit-reactivation.target.requires", "systemd-sysusers.service"));

  if (scenario.pcscd) {
    // pcsc-lite's etc/pcscd.socket.in as NixOS's services.pcscd installs it; the daemon a stand-in
    // that takes the socket and never answers (a connect succeeds: the plugin asks no more).
    writeFileSync(join(dir, "pcscd.socket"), "[Unit]\nDescription=PC/SC Smart Card Daemon Activation Socket\n\n[Socket]\nListenStream=/run/pcscd/pcscd.comm\nSocketMode=0660\n\n[Install]\nWantedBy=sockets.target\n");
    writeFileSync(join(dir, "pcscd.service"), "[Unit]\nDescription=PC/SC Smart Card Daemon (stand-in)\nRequires=pcscd.socket\n\n[Service]\nExecStart=/bin/sleep infinity\n");
    link("../pcscd.socket", join(dir, "sockets.target.wants", "pcscd.socket"));
  }

  for (const [name, s] of Object.entries(scenario.services ?? {})) {
    const settings = Object.entries(s.serviceConfig ?? {}).map(([k, v]) => `${k}=${v}\n`).join("");
    const scriptPath = `/usr/local/lib/scenario/${name}-start`;
    const file = `${name}.service`;
    const unitSettings = Object.entries(s.unitConfig ?? {}).map(([k, v]) => `${k}=${v}\n`).join("");
    writeFileSync(join(dir, file), `[Unit]\nDescription=${s.description ?? name}\n${unitSettings}\n[Service]\n${settings}ExecStart=${scriptPath}\n`);
    for (const target of s.wantedBy ?? []) link(`../${file}`, join(dir, `${target}.wants`, file));
  }
}

/** The start scripts of the scenario's services (systemd.services.<name>.script). */
function writeServiceScripts(scenario: Scenario, dir: string): void {
  for (const [name, s] of Object.entries(scenario.services ?? {})) {
    const scriptPath = join(dir, `usr/local/lib/scenario/${name}-start`);
    mkdirSync(dirname(scriptPath), { recursive: true });
    writeFileSync(scriptPath, `#!/bin/sh\nset -e\n${s.script}\n`, { mode: 0o755 });
  }
}

function writeDropIn(dir: string, unit: string, name: string, text: string): void {
  mkdirSync(join(dir, `${unit}.d`), { recursive: true });
  writeFileSync(join(dir, `${unit}.d`, name), text);
}

/** users.users with systemd.sysusers.enable, as sysusers.nix writes them (system users only). */
function sysusersLines(scenario: Scenario): string {
  const lines: string[] = [];
  for (const [name, u] of Object.entries(scenario.users ?? {})) {
    // nixpkgs asserts this: "systemd-sysusers doesn't create normal users, only system users".
    if (u.isNormalUser) throw new Error(`${scenario.name}: ${name} is a normal user. systemd-sysusers doesn't create normal users, only system users.`);
    lines.push(`g ${u.group} ${u.gid}`);
    lines.push(`u ${name} ${u.uid}:${u.group} "${name}" ${u.home ?? "/var/empty"} ${u.loginShell ? "/bin/bash" : "/usr/sbin/nologin"}`);
  }
  return lines.join("\n") + "\n";
}

function writeSysusers(scenario: Scenario, dir: string): void {
  if (!scenario.users) return;
  mkdirSync(join(dir, "usr/lib/sysusers.d"), { recursive: true });
  writeFileSync(join(dir, "usr/lib/sysusers.d/scenario.conf"), sysusersLines(scenario));
}

const generator = `#!/bin/sh
# Stands in for NixOS's /etc/systemd/system: links the units of the current configuration into the
# unit search path at boot and at every daemon-reload. /run/current-system is set by
# switch-to-configuration; at boot /run is empty and the booted configuration, "base", is used.
set -eu
current=${currentSystem}
[ -e "$current" ] || current=${configurationsDir}/base
cp -a "$current/etc/systemd/system/." "$1/"
`;

function writeGenerator(dir: string): void {
  const path = join(dir, "usr/lib/systemd/system-generators/agenixd-harness-configuration");
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, generator, { mode: 0o755 });
}

/** switch-to-configuration, ./switch.ts run by the machine's node. */
function writeSwitch(dir: string): void {
  const program = "/usr/local/lib/agenixd-harness/switch-to-configuration.mjs";
  mkdirSync(join(dir, dirname(program)), { recursive: true });
  copyFileSync(join(repoRoot, "build", "harness", "switch.js"), join(dir, program));
  mkdirSync(join(dir, "usr/local/sbin"), { recursive: true });
  writeFileSync(join(dir, "usr/local/sbin/switch-to-configuration"), `#!/bin/sh\nexec /usr/local/bin/node ${program} "$@"\n`, { mode: 0o755 });
}

/** Links to the programs of the packages NixOS puts on a service's PATH, from Debian's lists. */
function writeServicePath(dir: string, debianRoot: string): void {
  const target = join(dir, nixosServicePath);
  mkdirSync(target, { recursive: true });
  const seen = new Set<string>();
  for (const pkg of nixosServicePathPackages) {
    const list = join(debianRoot, "var/lib/dpkg/info", `${pkg}.list`);
    if (!existsSync(list)) throw new Error(`${list} is missing: cannot build the service PATH`);
    for (const path of readFileSync(list, "utf8").split("\n")) {
      const m = /^(?:\/usr)?\/s?bin\/([^/]+)$/.exec(path);
      if (!m || seen.has(m[1]!)) continue;
      seen.add(m[1]!);
      symlinkSync(path, join(target, m[1]!));
    }
  }
  if (seen.has("mount")) throw new Error("the service PATH must not hold mount(8): NixOS's does not");
}
