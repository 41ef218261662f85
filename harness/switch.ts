// `switch-to-configuration test` for the harness machines: the unit algorithm of NixOS's
// switch-to-configuration-ng (pkgs/by-name/sw/switch-to-configuration-ng/src/src/main.rs), for
// what matters to agenixd, written from a reading of that program. Which active units are stopped,
// restarted, reloaded, started or left alone follows from comparing the current configuration's
// unit files with the new one's; then: stop, activate, reset-failed, daemon-reload, restart
// sysinit-reactivation.target, reload, restart, start; a failed job or unit exits 4. With
// `dry-activate`: the same plan printed as "would …", and the configuration's own dry-activate
// script run with NIXOS_ACTION=dry-activate; nothing else.
//
// Left out: fstab and swap handling, nspawn containers, socket units, user units, systemd
// re-execution, the interrupted-run lists in /run/nixos and the activation-restart-list of a real
// switch (the harness runs no activation script). The dry-activation lists are read, as
// `dry-activate` reads them (agenixd's dry run writes them).
//
// This file runs inside the machine (copied there by ./fixture.ts and started by the machine's
// node), so it imports nothing but node's own modules. The planning is pure and exported for
// test/harness-switch.test.ts.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** Section -> key -> values, as s-t-c's parse_systemd_ini reads a unit and its drop-ins. */
export type UnitInfo = Map<string, Map<string, string[]>>;

/**
 * Adds one unit file's settings to `info`. [Install] is skipped; an empty value clears what
 * came before it (as `Key=` does in systemd); later values of a key are appended.
 */
export function parseUnitText(text: string, info: UnitInfo = new Map()): UnitInfo {
  let section: Map<string, string[]> | undefined;
  let skipping = false;
  // Values of one key within this file, so that `Key=` inside it clears only what precedes it.
  let fileValues = new Map<string, { values: string[]; cleared: boolean }>();
  const flush = () => {
    if (!section) return;
    for (const [key, { values, cleared }] of fileValues) {
      const existing = section.get(key);
      if (existing && !cleared) existing.push(...values);
      else section.set(key, values);
    }
    fileValues = new Map();
  };
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      flush();
      const name = header[1]!;
      skipping = name === "Install";
      if (skipping) {
        section = undefined;
        continue;
      }
      section = info.get(name);
      if (!section) info.set(name, (section = new Map()));
      continue;
    }
    if (skipping || !section) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    const entry = fileValues.get(key) ?? { values: [], cleared: false };
    if (value === "") {
      entry.values = [];
      entry.cleared = true;
    } else {
      entry.values.push(value);
    }
    fileValues.set(key, entry);
  }
  flush();
  return info;
}

/** s-t-c's parse_systemd_bool: the last value of the key, or `fallback` when it is unset. */
export function unitBool(info: UnitInfo | undefined, section: string, key: string, fallback: boolean): boolean {
  const last = info?.get(section)?.get(key)?.at(-1);
  return last === undefined ? fallback : ["1", "yes", "true", "on"].includes(last);
}

export type Comparison = "equal" | "restart" | "reload";

/** Keys of [Unit] whose change needs no restart (s-t-c's unit_section_ignores). */
const unitSectionIgnores = new Set([
  "X-Reload-Triggers", "Description", "Documentation", "OnFailure", "OnSuccess", "OnFailureJobMode", "IgnoreOnIsolate",
  "StopWhenUnneeded", "RefuseManualStart", "RefuseManualStop", "AllowIsolate", "CollectMode", "SourcePath",
]);

const sameValues = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/** s-t-c's compare_units: restart on any difference but ignored [Unit] keys, reload triggers and mount options. */
export function compareUnits(current: UnitInfo, next: UnitInfo): Comparison {
  let result: Comparison = "equal";
  const newSections = new Set(next.keys());
  for (const [sectionName, section] of current) {
    const newSection = next.get(sectionName);
    if (!newSection) {
      if (sectionName === "Unit" && [...section.keys()].every((k) => unitSectionIgnores.has(k))) continue;
      return "restart";
    }
    newSections.delete(sectionName);
    const newKeys = new Set(newSection.keys());
    for (const [key, value] of section) {
      newKeys.delete(key);
      const newValue = newSection.get(key);
      if (newValue === undefined) {
        if (sectionName === "Unit" && unitSectionIgnores.has(key)) continue;
        return "restart";
      }
      if (sameValues(value, newValue)) continue;
      if (sectionName === "Unit" && key === "X-Reload-Triggers") {
        result = "reload";
        continue;
      }
      if (sectionName === "Unit" && unitSectionIgnores.has(key)) continue;
      if (sectionName === "Mount" && key === "Options") {
        result = "reload";
        continue;
      }
      return "restart";
    }
    for (const key of newKeys) {
      if (sectionName !== "Unit") return "restart";
      if (key === "X-Reload-Triggers") result = "reload";
      else if (!unitSectionIgnores.has(key)) return "restart";
    }
  }
  if (newSections.size > 0) {
    if (newSections.size !== 1 || !newSections.has("Unit")) return "restart";
    for (const key of next.get("Unit")!.keys()) {
      if (!unitSectionIgnores.has(key)) return "restart";
      if (key === "X-Reload-Triggers") result = "reload";
    }
  }
  return result;
}

export interface ActiveUnit {
  id: string;
  /** ActiveState: active, activating, failed, deactivating, reloading… (inactive units are not listed). */
  state: string;
}

/** What the planning reads of the two configurations. */
export interface Configurations {
  /** The unit as the running configuration defines it (file and drop-ins), or undefined. */
  current(unit: string): UnitInfo | undefined;
  /** The unit as the new configuration defines it, or undefined when it has none (or masks it). */
  next(unit: string): UnitInfo | undefined;
}

export interface Plan {
  stop: Set<string>;
  /** Changed units left running (X-RestartIfChanged=false, RefuseManualStop, X-OnlyManualStart). */
  skip: Set<string>;
  reload: Set<string>;
  restart: Set<string>;
  start: Set<string>;
  /** Targets started only because they are active: left out of the messages, as s-t-c does. */
  quiet: Set<string>;
}

/** Template instances (getty@tty1.service) are read from their template when they have no file of their own. */
function baseUnitName(unit: string, cfg: Configurations): string {
  const m = /^(.*)@[^.]*\.(.*)$/.exec(unit);
  if (m && !cfg.current(unit) && !cfg.next(unit)) return `${m[1]}@.${m[2]}`;
  return unit;
}

/**
 * The units to stop, restart, reload and start (s-t-c's loop over the active units and
 * handle_modified_unit). Only units that are active or activating and that the running
 * configuration defines are considered; new units are started by the targets that want them.
 */
export function planSwitch(active: readonly ActiveUnit[], cfg: Configurations): Plan {
  const plan: Plan = { stop: new Set(), skip: new Set(), reload: new Set(), restart: new Set(), start: new Set(), quiet: new Set() };
  const activeIds = new Set(active.map((u) => u.id));
  for (const { id: unit, state } of active) {
    if (state !== "active" && state !== "activating") continue;
    const base = baseUnitName(unit, cfg);
    const current = cfg.current(base);
    if (!current) continue;
    const next = cfg.next(base);
    if (!next) {
      if (unitBool(current, "Unit", "X-StopOnRemoval", true)) plan.stop.add(unit);
    } else if (unit.endsWith(".target")) {
      const refused = ["suspend.target", "hibernate.target", "hybrid-sleep.target"].includes(unit) ||
        unitBool(next, "Unit", "RefuseManualStart", false) || unitBool(next, "Unit", "X-OnlyManualStart", false);
      if (!refused) {
        plan.start.add(unit);
        plan.quiet.add(unit);
      }
      if (unitBool(next, "Unit", "X-StopOnReconfiguration", false)) plan.stop.add(unit);
    } else {
      const comparison = compareUnits(current, next);
      if (comparison === "restart") handleModifiedUnit(unit, base, next, activeIds, cfg, plan);
      else if (comparison === "reload" && !plan.restart.has(unit)) plan.reload.add(unit);
    }
  }
  return plan;
}

function handleModifiedUnit(unit: string, base: string, next: UnitInfo, activeIds: Set<string>, cfg: Configurations, plan: Plan): void {
  if (["sysinit.target", "basic.target", "multi-user.target", "graphical.target"].includes(unit) || unit.endsWith(".unit") || unit.endsWith(".slice")) {
    return; // cannot be restarted directly
  }
  if (unit.endsWith(".mount")) {
    (unit === "-.mount" || unit === "nix.mount" ? plan.reload : plan.restart).add(unit);
    return;
  }
  if (unit.endsWith(".socket")) return;
  if (unitBool(next, "Service", "X-ReloadIfChanged", false) && !plan.restart.has(unit) && !plan.stop.has(unit)) {
    plan.reload.add(unit);
  } else if (
    !unitBool(next, "Service", "X-RestartIfChanged", true) ||
    unitBool(next, "Unit", "RefuseManualStop", false) ||
    unitBool(next, "Unit", "X-OnlyManualStart", false)
  ) {
    plan.skip.add(unit);
  } else if (!unitBool(next, "Service", "X-StopIfChanged", true) || !unit.endsWith(".service")) {
    plan.restart.add(unit);
    plan.reload.delete(unit);
  } else {
    // Stopped before activation and started after it; a socket-activated service has its
    // sockets stopped and started instead.
    let socketActivated = false;
    const named = (next.get("Service")?.get("Sockets") ?? []).join(" ").split(/\s+/).filter(Boolean);
    const sockets = named.length ? named : [`${base.replace(/\.[a-z]*$/, "")}.socket`];
    for (const socket of sockets) {
      if (!activeIds.has(socket)) continue;
      plan.stop.add(socket);
      if (cfg.next(socket)) {
        plan.start.add(socket);
        socketActivated = true;
      }
      plan.reload.delete(unit);
    }
    if (unitBool(next, "Service", "X-NotSocketActivated", false)) socketActivated = false;
    if (!socketActivated) plan.start.add(unit);
    plan.stop.add(unit);
    plan.reload.delete(unit);
  }
}

/**
 * What the dry-activate script asked for in /run/nixos/dry-activation-{restart,reload}-list, added
 * to the plan as s-t-c-ng's dry-activate does: a unit to restart that is not active is one it
 * would start; an active one is handled as a changed unit (stop and start, restart, reload or
 * skip, by its new unit file); a unit to reload is reloaded if active and not restarted or stopped.
 */
export function addActivationRequests(plan: Plan, restart: readonly string[], reload: readonly string[], active: readonly ActiveUnit[], cfg: Configurations): void {
  const activeIds = new Set(active.map((u) => u.id));
  for (const unit of new Set(restart)) {
    if (!activeIds.has(unit)) {
      plan.start.add(unit);
      continue;
    }
    const base = baseUnitName(unit, cfg);
    const next = cfg.next(base);
    if (next) handleModifiedUnit(unit, base, next, activeIds, cfg, plan);
  }
  for (const unit of new Set(reload)) {
    if (activeIds.has(unit) && !plan.restart.has(unit) && !plan.stop.has(unit)) plan.reload.add(unit);
  }
}

// ---- Inside the machine ---------------------------------------------------------------------

/** Every configuration of the scenario: a NixOS-like toplevel with etc/systemd/system. */
export const configurationsDir = "/etc/agenixd-harness/configurations";
/** The running configuration, as on NixOS; absent until the first switch (the booted one is "base"). */
export const currentSystem = "/run/current-system";
/** Units every configuration shares (Debian's), found when a configuration has no file of its own. */
const sharedUnitDir = "/usr/lib/systemd/system";

/** A unit of the configuration at `toplevel`: its own file, else the shared one, with drop-ins. */
function readUnit(toplevel: string, unit: string): UnitInfo | undefined {
  const own = join(toplevel, "etc/systemd/system", unit);
  let file: string | undefined;
  if (existsSync(own)) file = own;
  else if (existsSync(join(sharedUnitDir, unit))) file = join(sharedUnitDir, unit);
  if (!file || realpathSync(file) === "/dev/null") return undefined;
  const info = parseUnitText(readFileSync(file, "utf8"));
  const dropIns = `${own}.d`;
  if (existsSync(dropIns)) {
    for (const conf of readdirSync(dropIns).filter((f) => f.endsWith(".conf")).sort()) {
      parseUnitText(readFileSync(join(dropIns, conf), "utf8"), info);
    }
  }
  return info;
}

function systemctl(args: readonly string[]): number {
  const r = spawnSync("systemctl", args, { stdio: "inherit" });
  return r.status ?? 1;
}

function activeUnits(): ActiveUnit[] {
  const r = spawnSync("systemctl", ["list-units", "--all", "--full", "--plain", "--no-legend", "--no-pager"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`systemctl list-units failed: ${r.stderr}`);
  const units: ActiveUnit[] = [];
  for (const line of r.stdout.split("\n")) {
    // UNIT LOAD ACTIVE SUB DESCRIPTION; a failed unit is marked with a leading bullet.
    const fields = line.replace(/^\s*[●*]\s*/, "").trim().split(/\s+/);
    const [id, , state] = fields;
    if (id && state && state !== "inactive") units.push({ id, state });
  }
  return units;
}

const sorted = (units: Iterable<string>) => [...units].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));

/**
 * s-t-c's dry-activate: what would be stopped, then the configuration's `dry-activate` script
 * (the activation snippets that support a dry run: agenixd's with age.dryActivate) with
 * NIXOS_ACTION=dry-activate, its status ignored as s-t-c ignores it; the units it listed in
 * /run/nixos (addActivationRequests; the lists are removed); then what would be reloaded,
 * restarted, started. Exits 0.
 */
function dryActivate(toplevel: string, plan: Plan, active: readonly ActiveUnit[], cfg: Configurations): number {
  const show = (message: string, units: Set<string>) => {
    const shown = [...units].filter((u) => !plan.quiet.has(u) || process.env.STC_DISPLAY_ALL_UNITS === "1");
    if (shown.length) console.error(`${message}: ${sorted(shown).join(", ")}`);
  };
  show("would stop the following units", plan.stop);
  if (plan.skip.size) console.error(`would NOT stop the following changed units: ${sorted(plan.skip).join(", ")}`);
  console.error("would activate the configuration...");
  const script = join(toplevel, "dry-activate");
  if (existsSync(script)) spawnSync(script, [toplevel], { stdio: "inherit", env: { ...process.env, NIXOS_ACTION: "dry-activate" } });
  const lists = ["/run/nixos/dry-activation-restart-list", "/run/nixos/dry-activation-reload-list"] as const;
  const [restart, reload] = lists.map((file) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []));
  for (const file of lists) rmSync(file, { force: true });
  addActivationRequests(plan, restart!, reload!, active, cfg);
  show("would reload the following units", plan.reload);
  show("would restart the following units", plan.restart);
  show("would start the following units", plan.start);
  return 0;
}

function main(argv: readonly string[]): number {
  const [name, action = "test"] = argv;
  if (!name || (action !== "test" && action !== "dry-activate")) {
    console.error("usage: switch-to-configuration <configuration> [test|dry-activate]");
    return 1;
  }
  const toplevel = join(configurationsDir, name);
  if (!existsSync(toplevel)) {
    console.error(`no configuration ${name} in ${configurationsDir}`);
    return 1;
  }
  const current = existsSync(currentSystem) ? realpathSync(currentSystem) : join(configurationsDir, "base");
  const active = activeUnits();
  const cfg: Configurations = { current: (u) => readUnit(current, u), next: (u) => readUnit(toplevel, u) };
  const plan = planSwitch(active, cfg);
  if (action === "dry-activate") return dryActivate(toplevel, plan, active, cfg);
  let exitCode = 0;
  const shown = (units: Set<string>) => [...units].filter((u) => !plan.quiet.has(u) || process.env.STC_DISPLAY_ALL_UNITS === "1");
  const jobs = (verb: string, units: Set<string>, message: string) => {
    if (units.size === 0) return;
    if (shown(units).length) console.error(`${message}: ${sorted(shown(units)).join(", ")}`);
    if (systemctl([verb, ...sorted(units)]) !== 0) exitCode = 4;
  };

  jobs("stop", plan.stop, "stopping the following units");
  if (plan.skip.size) console.error(`NOT restarting the following changed units: ${sorted(plan.skip).join(", ")}`);

  // Activation: what NixOS's activation does to /etc/systemd/system, done by switching the
  // configuration the harness's generator links into the unit search path.
  console.error("activating the configuration...");
  const link = `${currentSystem}.new`;
  symlinkSync(toplevel, link);
  renameSync(link, currentSystem);

  systemctl(["reset-failed"]);
  if (systemctl(["daemon-reload"]) !== 0) exitCode = 4;

  console.error("restarting sysinit-reactivation.target");
  if (systemctl(["restart", "sysinit-reactivation.target"]) !== 0) exitCode = 4;

  // A unit to reload that is no longer active is started instead.
  for (const unit of [...plan.reload]) {
    if (systemctl(["is-active", "--quiet", unit]) !== 0) {
      plan.reload.delete(unit);
      plan.start.add(unit);
    }
  }
  jobs("reload", plan.reload, "reloading the following units");
  jobs("restart", plan.restart, "restarting the following units");
  // Starting every active target starts the units the new configuration adds to them.
  jobs("start", plan.start, "starting the following units");

  const before = new Set(active.map((u) => u.id));
  const after = activeUnits();
  const started = after.filter((u) => u.state !== "failed" && !before.has(u.id) && !u.id.endsWith(".scope")).map((u) => u.id);
  if (started.length) console.error(`the following new units were started: ${sorted(started).join(", ")}`);
  const failed = after.filter((u) => u.state === "failed").map((u) => u.id);
  if (failed.length) {
    console.error(`warning: the following units failed: ${sorted(failed).join(", ")}`);
    systemctl(["status", "--no-pager", "--full", ...sorted(failed)]);
    exitCode = 4;
  }
  return exitCode;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
