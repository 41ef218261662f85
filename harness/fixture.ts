// The files a scenario adds to the Debian root: test host keys, ciphertexts at /nix/store paths,
// the manifests and unit files that nix/manifest.nix and nix/unit.nix produce for each
// configuration (evaluated by ./system.nix), and the pieces of NixOS those units rely on
// (sysinit-reactivation.target, switch-to-configuration, sysusers with password credentials).
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ageEncrypt, generateSshKey } from "../test/helpers/age-cli.js";
import { cacheDir, repoRoot } from "./cache.js";
import { runChecked } from "./process.js";
import { GLIBC_TUNABLES, snapshotArgs } from "../scripts/launch.js";
import { configurations, type Scenario, type SecretDef } from "./scenario.js";

/** Where the built agenixd lives inside the machine (repo's dist/ and node_modules/ below it). */
export const agenixdRoot = "/opt/agenixd";
const agenixdExe = `${agenixdRoot}/bin/agenixd`;
const hostKeyPath = "/etc/ssh/ssh_host_ed25519_key";
const unitDir = "usr/lib/systemd/system";
/** Every configuration's units, for switch-to-configuration to install. */
const configurationsDir = "etc/agenixd-harness/configurations";

interface EvaluatedConfiguration {
  manifestPath: string;
  manifest: unknown;
  services: Record<string, { wantedBy: string[]; requiredBy: string[]; aliases: string[] }>;
  unitFiles: Record<string, string>;
}

/**
 * Writes the scenario's layer into `dir` (which must be empty or absent). Keys are made fresh
 * for each run: nothing secret is cached.
 */
export async function buildFixture(scenario: Scenario, dir: string): Promise<void> {
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
  const encrypt = (attr: string, def: SecretDef): string => {
    const recipient = def.undecryptable ? stranger.recipient : host.recipient;
    return storeFile(`${def.sourceName ?? attr}.age`, ageEncrypt(def.content, [recipient]));
  };

  const users = Object.fromEntries(
    Object.entries(scenario.users ?? {}).map(([name, u]) => [
      name,
      { group: u.group, ...(u.hashedPasswordSecret ? { hashedPasswordSecret: u.hashedPasswordSecret } : {}) },
    ]),
  );
  const machine = {
    agenixd: agenixdExe,
    userManagement: "sysusers",
    identityPaths: [hostKeyPath],
    users,
    configurations: Object.fromEntries(
      Object.entries(configurations(scenario)).map(([name, secrets]) => [
        name,
        {
          secrets: Object.fromEntries(
            Object.entries(secrets).map(([attr, def]) => {
              const { content: _c, sourceName: _s, undecryptable: _u, ...options } = def;
              return [attr, { ...options, file: encrypt(attr, def) }];
            }),
          ),
        },
      ]),
    ),
  };
  const evaluated = await evalSystem(machine);

  for (const [name, cfg] of Object.entries(evaluated)) {
    mkdirSync(dirname(at(cfg.manifestPath)), { recursive: true });
    writeFileSync(at(cfg.manifestPath), JSON.stringify(cfg.manifest), { mode: 0o444 });
    writeUnits(cfg, join(dir, configurationsDir, name));
  }
  const base = evaluated.base;
  if (!base) throw new Error("no base configuration evaluated");
  // The booted configuration: NixOS links its units like this at every boot.
  writeUnits(base, join(dir, unitDir));

  writeNixosShims(dir);
  writeUsers(scenario, dir, base);
  writeServices(scenario, dir);

  mkdirSync(at("/var/log/journal"), { recursive: true });
  mkdirSync(at(`${agenixdRoot}/bin`), { recursive: true });
  // As the package's wrapper does: the startup snapshot run by the node that built it, with the
  // package's glibc tunables in front of any the caller set.
  writeFileSync(
    at(agenixdExe),
    `#!/bin/sh\nexport GLIBC_TUNABLES="${GLIBC_TUNABLES}\${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}"\n` +
      `exec /usr/local/bin/node ${snapshotArgs(`${agenixdRoot}/dist/agenixd.blob`).join(" ")} "$@"\n`,
    { mode: 0o755 },
  );
  writeFileSync(at("/etc/hostname"), `${scenario.name}\n`);
}

async function evalSystem(machine: unknown): Promise<Record<string, EvaluatedConfiguration>> {
  const stateDir = mkdtempSync(join(cacheDir(), "nix-state-"));
  try {
    const out = await runChecked(
      ["nix-instantiate", "--store", "dummy://", "--eval", "--strict", "--json", "--argstr", "json", JSON.stringify(machine), join(repoRoot, "harness", "system.nix")],
      { env: { ...process.env, NIX_STATE_DIR: stateDir, XDG_CACHE_HOME: stateDir } },
    );
    return JSON.parse(out) as Record<string, EvaluatedConfiguration>;
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** Unit files plus the links NixOS makes for wantedBy / requiredBy / aliases. */
function writeUnits(cfg: EvaluatedConfiguration, dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(cfg.unitFiles)) {
    writeFileSync(join(dir, file), text);
    const service = cfg.services[file.replace(/\.service$/, "")];
    if (!service) continue;
    for (const [suffix, targets] of [[".wants", service.wantedBy], [".requires", service.requiredBy]] as const) {
      for (const target of targets) {
        mkdirSync(join(dir, target + suffix), { recursive: true });
        symlinkSync(`../${file}`, join(dir, target + suffix, file));
      }
    }
    for (const alias of service.aliases) symlinkSync(file, join(dir, alias));
  }
}

const switchScript = `#!/bin/sh
# switch-to-configuration test, reduced to what matters to agenixd: the configuration's units
# go to /run/systemd/system (above the booted ones in /usr/lib, gone at the next boot), units
# whose file changed are restarted, then sysinit-reactivation.target is restarted.
set -eu
name=$1
src=/${configurationsDir}/$name
[ -d "$src" ] || { echo "no configuration $name" >&2; exit 1; }
changed=
for unit in $(cd "$src" && ls *.service); do
  current=$(systemctl show -P FragmentPath "$unit")
  if ! cmp -s "$src/$unit" "$current"; then changed="$changed $unit"; fi
done
for unit in $(cd "$src" && ls -d *.service *.wants *.requires 2>/dev/null); do
  rm -rf "/run/systemd/system/$unit"
done
if [ "$name" != base ]; then cp -a "$src"/. /run/systemd/system/; fi
systemctl daemon-reload
status=0
systemctl restart $changed sysinit-reactivation.target || status=4
exit $status
`;

function writeNixosShims(dir: string): void {
  // NixOS defines this target; switch-to-configuration restarts it to re-run sysinit units.
  writeFileSync(join(dir, unitDir, "sysinit-reactivation.target"), "[Unit]\nDescription=Reactivate sysinit units\n");
  mkdirSync(join(dir, "usr/local/sbin"), { recursive: true });
  writeFileSync(join(dir, "usr/local/sbin/switch-to-configuration"), switchScript, { mode: 0o755 });
}

/** users.users with systemd.sysusers.enable: a sysusers.d entry, passwords as credentials. */
function writeUsers(scenario: Scenario, dir: string, base: EvaluatedConfiguration): void {
  const users = Object.entries(scenario.users ?? {});
  const lines: string[] = [];
  const credentials: string[] = [];
  const manifest = base.manifest as { secrets: { name: string; path: string }[] };
  for (const [name, u] of users) {
    lines.push(`g ${u.group} ${u.gid}`);
    const home = u.isNormalUser ? `/home/${name}` : "/var/empty";
    lines.push(`u ${name} ${u.uid}:${u.group} "${name}" ${home} /bin/sh`);
    if (u.hashedPasswordSecret) {
      const secret = manifest.secrets.find((s) => s.name === (scenario.secrets[u.hashedPasswordSecret!]?.name ?? u.hashedPasswordSecret));
      if (!secret) throw new Error(`${scenario.name}: no secret ${u.hashedPasswordSecret} for ${name}'s password`);
      credentials.push(`LoadCredential=passwd.hashed-password.${name}:${secret.path}`);
    }
  }
  const dropIn = join(dir, unitDir, "systemd-sysusers.service.d");
  mkdirSync(dropIn, { recursive: true });
  // Debian runs sysusers only when /usr is newer than /etc; NixOS runs it at every boot.
  writeFileSync(join(dropIn, "nixos.conf"), `[Unit]\nConditionNeedsUpdate=\n\n[Service]\n${credentials.map((c) => c + "\n").join("")}`);
  if (lines.length) {
    mkdirSync(join(dir, "usr/lib/sysusers.d"), { recursive: true });
    writeFileSync(join(dir, "usr/lib/sysusers.d/scenario.conf"), lines.join("\n") + "\n");
  }
}

/** systemd.services.<name> with `script` and default dependencies. */
function writeServices(scenario: Scenario, dir: string): void {
  for (const [name, s] of Object.entries(scenario.services ?? {})) {
    const settings = Object.entries(s.serviceConfig ?? {}).map(([k, v]) => `${k}=${v}\n`).join("");
    const scriptPath = `/usr/local/lib/scenario/${name}-start`;
    mkdirSync(join(dir, dirname(scriptPath)), { recursive: true });
    writeFileSync(join(dir, scriptPath), `#!/bin/sh\nset -e\n${s.script}\n`, { mode: 0o755 });
    const file = `${name}.service`;
    writeFileSync(join(dir, unitDir, file), `[Unit]\nDescription=${s.description ?? name}\n\n[Service]\n${settings}ExecStart=${scriptPath}\n`);
    for (const target of s.wantedBy ?? []) {
      mkdirSync(join(dir, unitDir, `${target}.wants`), { recursive: true });
      symlinkSync(`../${file}`, join(dir, unitDir, `${target}.wants`, file));
    }
  }
}
