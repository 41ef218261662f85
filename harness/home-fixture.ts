// The part of a scenario's layer for its Home Manager user (scenario.home): the user's SSH key
// (~/.ssh/id_ed25519, agenix's default identity), the ciphertexts, and one home configuration per
// entry (/etc/agenixd-harness/home/<name>: the user units Home Manager writes for it, agenixd.service
// from nix/home-service.nix through ./home.nix), the base one linked into ~/.config/systemd/user as
// Home Manager links its files. The user lingers, so that logind starts the user's manager at
// boot. `home-manager-switch <name>` (./home-switch.ts) is the stand-in for `home-manager switch`.
import { chownSync, copyFileSync, lchownSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ageEncrypt, generateSshKey } from "../test/helpers/age-cli.js";
import { repoRoot } from "./cache.js";
import { evalHarnessNix } from "./nix-eval.js";
import { type HomeDef, homeConfigurations, type Scenario, type ServiceDef } from "./scenario.js";

/** The home configurations' unit directories inside the machine. */
export const homeConfigurationsDir = "/etc/agenixd-harness/home";
const switchProgram = "/usr/local/lib/agenixd-harness/home-switch.mjs";

interface EvaluatedHome {
  manifestPath: string;
  manifestJSON: string;
  storeFiles: Record<string, string>;
  unitFile: string;
}

export interface HomeFixtureContext {
  /** The layer's path for a path inside the machine. */
  at: (path: string) => string;
  /** Writes a file into the layer's /nix/store and returns its store path. */
  storeFile: (name: string, bytes: Buffer | string) => string;
  /** A recipient whose key no machine has (for `undecryptable`). */
  strangerRecipient: string;
  agenixdExe: string;
  systemctl: string;
}

export async function buildHomeFixture(scenario: Scenario, ctx: HomeFixtureContext): Promise<void> {
  const home = scenario.home;
  if (!home) return;
  const user = scenario.users?.[home.user];
  if (!user?.home) throw new Error(`${scenario.name}: home.user ${home.user} must be one of the scenario's users, with a home directory`);
  const { at } = ctx;
  const own = (path: string, mode: number) => {
    mkdirSync(at(path), { recursive: true, mode });
    chownSync(at(path), user.uid, user.gid);
  };
  own(user.home, 0o700);
  own(`${user.home}/.ssh`, 0o700);
  const key = generateSshKey(at(`${user.home}/.ssh`), "ed25519", 0, "id_ed25519");
  chownSync(key.privatePath, user.uid, user.gid);
  chownSync(`${key.privatePath}.pub`, user.uid, user.gid);

  const evaluated = await evalHarnessNix<Record<string, EvaluatedHome>>("home.nix", {
    user: home.user,
    uid: home.ageUid ? user.uid : null,
    agenixd: ctx.agenixdExe,
    systemctl: ctx.systemctl,
    identityPaths: [`${user.home}/.ssh/id_ed25519`],
    configurations: Object.fromEntries(
      Object.entries(homeConfigurations(home)).map(([name, cfg]) => [
        name,
        {
          templates: cfg.templates,
          secrets: Object.fromEntries(
            Object.entries(cfg.secrets).map(([attr, def]) => {
              const { content, sourceName, undecryptable, ...options } = def;
              const recipient = undecryptable ? ctx.strangerRecipient : key.recipient;
              return [attr, { ...options, file: ctx.storeFile(`${sourceName ?? attr}.age`, ageEncrypt(content, [recipient])) }];
            }),
          ),
        },
      ]),
    ),
  });

  for (const [name, cfg] of Object.entries(evaluated)) {
    mkdirSync(dirname(at(cfg.manifestPath)), { recursive: true });
    writeFileSync(at(cfg.manifestPath), cfg.manifestJSON, { mode: 0o444 });
    for (const [path, text] of Object.entries(cfg.storeFiles)) writeFileSync(at(path), text, { mode: 0o444 });
    writeUserUnits(home, join(homeConfigurationsDir, name), cfg.unitFile, at);
  }
  linkUserUnits(home, user, at);
  writeServiceScripts(home, at);

  mkdirSync(at("/var/lib/systemd/linger"), { recursive: true });
  writeFileSync(at(`/var/lib/systemd/linger/${home.user}`), "");
  mkdirSync(at(dirname(switchProgram)), { recursive: true });
  copyFileSync(join(repoRoot, "build", "harness", "home-switch.js"), at(switchProgram));
  mkdirSync(at("/usr/local/sbin"), { recursive: true });
  writeFileSync(
    at("/usr/local/sbin/home-manager-switch"),
    `#!/bin/sh\nexec /usr/local/bin/node ${switchProgram} ${home.user} ${user.uid} ${user.home} ${homeConfigurationsDir}/"$1"\n`,
    { mode: 0o755 },
  );
}

/** A user unit as Home Manager writes systemd.user.services.<name> (sections and keys sorted). */
function userServiceText(name: string, s: ServiceDef): string {
  const lines = (entries: Record<string, string | boolean>) =>
    Object.keys(entries)
      .sort()
      .map((k) => `${k}=${entries[k]}\n`)
      .join("");
  const service = { ...s.serviceConfig, ExecStart: `/usr/local/lib/scenario/home-${name}-start` };
  const unit = { Description: s.description ?? name, ...s.unitConfig };
  return `[Install]\nWantedBy=${(s.wantedBy ?? []).join(" ")}\n\n[Service]\n${lines(service)}\n[Unit]\n${lines(unit)}`;
}

/** One home configuration's user units, and the .wants links `systemctl --user enable` would make. */
function writeUserUnits(home: HomeDef, dir: string, agenixdUnit: string, at: (p: string) => string): void {
  const units: Record<string, { text: string; wantedBy: string[] }> = {
    "agenixd.service": { text: agenixdUnit, wantedBy: ["default.target"] },
  };
  for (const [name, s] of Object.entries(home.services ?? {})) units[`${name}.service`] = { text: userServiceText(name, s), wantedBy: s.wantedBy ?? [] };
  mkdirSync(at(dir), { recursive: true });
  for (const [file, { text, wantedBy }] of Object.entries(units)) {
    writeFileSync(at(join(dir, file)), text, { mode: 0o444 });
    for (const target of wantedBy) {
      mkdirSync(at(join(dir, `${target}.wants`)), { recursive: true });
      symlinkSync(`../${file}`, at(join(dir, `${target}.wants`, file)));
    }
  }
}

/** ~/.config/systemd/user holding links to the base configuration's units, the user's own. */
function linkUserUnits(home: HomeDef, user: { uid: number; gid: number; home?: string }, at: (p: string) => string): void {
  let path = user.home!;
  for (const part of [".config", "systemd", "user"]) {
    path = join(path, part);
    mkdirSync(at(path), { mode: 0o755 });
    chownSync(at(path), user.uid, user.gid);
  }
  const base = join(homeConfigurationsDir, "base");
  for (const entry of ["agenixd.service", ...Object.keys(home.services ?? {}).map((n) => `${n}.service`), "default.target.wants"]) {
    symlinkSync(join(base, entry), at(join(path, entry)));
    lchownSync(at(join(path, entry)), user.uid, user.gid);
  }
}

function writeServiceScripts(home: HomeDef, at: (p: string) => string): void {
  for (const [name, s] of Object.entries(home.services ?? {})) {
    const path = at(`/usr/local/lib/scenario/home-${name}-start`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `#!/bin/sh\nset -e\n${s.script}\n`, { mode: 0o755 });
  }
}
