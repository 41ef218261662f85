// Restarting and reloading the units whose secrets changed (age.secrets.<name>.restartUnits /
// reloadUnits). Done once per unit, after the new generation is live, with
// `systemctl --no-block`: the jobs are queued behind whatever systemd is doing (a switch waits
// for us), never awaited here. try-restart and try-reload-or-restart leave stopped units stopped.
import type { SecretChange } from "./changes.js";

export interface UnitTriggers {
  readonly restartUnits: readonly string[];
  readonly reloadUnits: readonly string[];
}

export interface UnitActions {
  /** Units to restart, each once, in the order their secrets come. */
  readonly restart: readonly string[];
  /** Units to reload (or restart when they cannot reload) that are not restarted anyway. */
  readonly reload: readonly string[];
}

/**
 * A unit name systemctl takes as one: letters, digits and `:-_.@\`, optionally with a type
 * suffix; never starting with `-`, which systemctl would read as an option.
 */
export function isUnitName(name: string): boolean {
  return name.length <= 255 && /^[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]*$/.test(name);
}

/** Which units the changes call for. `triggersOf` gives a changed secret's units (the previous declaration's for a removed one). */
export function planUnitActions(changes: readonly SecretChange[], triggersOf: (change: SecretChange) => UnitTriggers | undefined): UnitActions {
  const restart = new Set<string>();
  const reload = new Set<string>();
  for (const change of changes) {
    const triggers = triggersOf(change);
    if (!triggers) continue;
    for (const unit of triggers.restartUnits) restart.add(unit);
    for (const unit of triggers.reloadUnits) reload.add(unit);
  }
  return { restart: [...restart], reload: [...reload].filter((u) => !restart.has(u)) };
}

export type CommandRunner = (command: string, args: readonly string[]) => Promise<void>;

export interface UnitActionResult {
  readonly action: "restart" | "reload";
  readonly units: readonly string[];
  /** Why systemctl failed; undefined when it queued the jobs. */
  readonly error?: string;
}

/** The systemctl to run: $AGENIXD_SYSTEMCTL (the unit sets it), else the one on PATH. */
export function systemctlPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.AGENIXD_SYSTEMCTL || "systemctl";
}

/** Queues the restarts and reloads: one systemctl call per kind of action, never one per unit. */
export async function applyUnitActions(actions: UnitActions, run: CommandRunner, systemctl = systemctlPath(), leading: readonly string[] = []): Promise<UnitActionResult[]> {
  const results: UnitActionResult[] = [];
  const calls = [
    ["restart", "try-restart", actions.restart],
    ["reload", "try-reload-or-restart", actions.reload],
  ] as const;
  for (const [action, verb, units] of calls) {
    if (units.length === 0) continue;
    try {
      await run(systemctl, [...leading, "--no-block", verb, "--", ...units]);
      results.push({ action, units });
    } catch (e) {
      results.push({ action, units, error: (e as Error).message });
    }
  }
  return results;
}
