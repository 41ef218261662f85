// `home-manager switch` for the harness's Home Manager user: links the user units of another home
// configuration into ~/.config/systemd/user, as Home Manager's linkGeneration does, then what
// sd-switch (Home Manager's default systemd.user.startServices) does with the user's manager:
// stop the units that are gone, daemon-reload, restart the active units whose file changed, start
// the units default.target wants that are not running. Exits 1 when a start or restart failed,
// as `home-manager switch` reports a failed activation.
//
//   node home-switch.js <user> <uid> <home> <configuration directory>
//
// Runs inside the machine as root (copied there by ./home-fixture.ts); node's modules only.
// Left out: sd-switch's reloads (X-Reload-Triggers), timers, sockets and paths.
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, readFileSync, readdirSync, renameSync, symlinkSync, unlinkSync } from "node:fs";
import { join } from "node:path";

const [user, uid, home, configuration] = process.argv.slice(2);
if (!user || !uid || !home || !configuration) {
  console.error("usage: home-switch <user> <uid> <home> <configuration directory>");
  process.exit(2);
}
const userUnits = join(home, ".config/systemd/user");

function systemctl(...args: string[]): { status: number; output: string } {
  const r = spawnSync("runuser", ["-u", user!, "--", "env", `XDG_RUNTIME_DIR=/run/user/${uid}`, "systemctl", "--user", ...args], { encoding: "utf8" });
  return { status: r.status ?? 1, output: (r.stdout + r.stderr).trim() };
}

/** Unit name -> file text, of the units linked in ~/.config/systemd/user or lying in a configuration. */
function units(dir: string): Map<string, string> {
  const result = new Map<string, string>();
  if (!existsSync(dir)) return result;
  for (const name of readdirSync(dir)) {
    if (!/\.(service|target)$/.test(name)) continue;
    result.set(name, readFileSync(join(dir, name), "utf8"));
  }
  return result;
}

function wanted(dir: string): string[] {
  const wants = join(dir, "default.target.wants");
  return existsSync(wants) ? readdirSync(wants) : [];
}

/** Points `name` in ~/.config/systemd/user at `target`, replacing what was there in one rename. */
function relink(name: string, target: string): void {
  const path = join(userUnits, name);
  const temp = join(userUnits, `.${name}.home-switch`);
  symlinkSync(target, temp);
  spawnSync("chown", ["-h", `${user}:`, temp]);
  renameSync(temp, path);
}

const before = units(userUnits);
const after = units(configuration);
const active = (unit: string) => systemctl("is-active", "--quiet", unit).status === 0;

const failures: string[] = [];
const act = (verb: string, unit: string) => {
  console.log(`home-switch: ${verb} ${unit}`);
  const r = systemctl(verb, unit);
  if (r.status !== 0) failures.push(`${verb} ${unit}: ${r.output || `exit code ${r.status}`}`);
};

const removed = [...before.keys()].filter((u) => !after.has(u));
for (const unit of removed) if (active(unit)) act("stop", unit);
for (const unit of removed) unlinkSync(join(userUnits, unit));
for (const unit of after.keys()) relink(unit, join(configuration, unit));
if (lstatSync(join(userUnits, "default.target.wants"), { throwIfNoEntry: false })) relink("default.target.wants", join(configuration, "default.target.wants"));
const reload = systemctl("daemon-reload");
if (reload.status !== 0) failures.push(`daemon-reload: ${reload.output}`);

const restarted = new Set<string>();
for (const [unit, text] of after) {
  if (before.has(unit) && before.get(unit) !== text && active(unit)) {
    act("restart", unit);
    restarted.add(unit);
  }
}
// A unit whose restart failed is not started a second time.
for (const unit of wanted(configuration)) if (!restarted.has(unit) && !active(unit)) act("start", unit);

for (const failure of failures) console.error(`home-switch: ${failure}`);
process.exitCode = failures.length ? 1 : 0;
