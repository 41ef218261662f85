// `nixos-rebuild dry-activate` (switch-to-configuration dry-activate) prints the units it would
// reload, restart and start. An activation snippet adds its own units to that summary by
// appending their names, one per line, to /run/nixos/dry-activation-restart-list and
// dry-activation-reload-list (NixOS manual, "Activation script"); switch-to-configuration-ng
// reads both after the dry-activate script has run, then removes them. It treats a listed unit
// that is not active as one it would start, so only the units that are active now are listed:
// agenixd's restarts are try-restarts, which leave a stopped unit stopped.
import { childProcess } from "./child-process.js";
import { closeSync, constants, fstatSync, openSync, writeSync } from "node:fs";
import { errnoCode } from "./errno.js";
import { ROOT_ONLY } from "./ramfs.js";
import { Dirs, TrustError } from "./secure-fs.js";
import type { UnitActions } from "./units.js";

/** switch-to-configuration's directory for its lists. */
export const NIXOS_RUN_DIR = "/run/nixos";
export const DRY_RESTART_LIST = "dry-activation-restart-list";
export const DRY_RELOAD_LIST = "dry-activation-reload-list";

/** Which of `units` are running now (what a try-restart would restart). */
export type ActiveQuery = (units: readonly string[]) => Promise<ReadonlySet<string>>;

const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Appends the active units of `actions` to switch-to-configuration's dry-activation lists in
 * `dir` (made 0755 when missing, as switch-to-configuration makes it). The directory is reached
 * by a trusted walk (root's alone all the way) and each list must be a regular file of root's
 * that no one else may write, or nothing is written. Returns the units listed.
 */
export async function recordDryActivation(actions: UnitActions, active: ActiveQuery, dir = NIXOS_RUN_DIR): Promise<UnitActions> {
  const wanted = [...actions.restart, ...actions.reload];
  const running = wanted.length === 0 ? new Set<string>() : await active(wanted);
  const listed: UnitActions = { restart: actions.restart.filter((u) => running.has(u)), reload: actions.reload.filter((u) => running.has(u)) };
  if (listed.restart.length === 0 && listed.reload.length === 0) return listed;
  const dirs = new Dirs();
  try {
    const held = dirs.dir(dir, ROOT_ONLY, { uid: -1, gid: -1, mode: 0o755 });
    appendUnits(`${held.op}/${DRY_RESTART_LIST}`, `${dir}/${DRY_RESTART_LIST}`, listed.restart);
    appendUnits(`${held.op}/${DRY_RELOAD_LIST}`, `${dir}/${DRY_RELOAD_LIST}`, listed.reload);
  } finally {
    dirs.close();
  }
  return listed;
}

function appendUnits(op: string, shown: string, units: readonly string[]): void {
  if (units.length === 0) return;
  let fd: number;
  try {
    fd = openSync(op, APPEND_FLAGS, 0o644);
  } catch (e) {
    if (errnoCode(e) === "ELOOP") throw new TrustError(`${shown} is a symlink; refusing to write through it`);
    throw new Error(`cannot open ${shown}: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new TrustError(`${shown} is not a regular file`);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) throw new TrustError(`${shown} is owned by uid ${st.uid} with mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}; only root may write it`);
    const text = Buffer.from(units.map((u) => `${u}\n`).join(""));
    for (let off = 0; off < text.length; ) off += writeSync(fd, text, off, text.length - off);
  } finally {
    closeSync(fd);
  }
}

/** `systemctl is-active` of each unit: the running ones (active, reloading, activating). */
export function systemctlActive(systemctl: string): ActiveQuery {
  return (units) =>
    new Promise((resolve, reject) => {
      // is-active exits non-zero when some unit is not active; its output still has one line per unit.
      childProcess().execFile(systemctl, ["is-active", "--", ...units], { encoding: "utf8", maxBuffer: 1 << 20, timeout: 30_000 }, (error, stdout) => {
        const states = stdout.split("\n").filter((l) => l !== "");
        if (states.length !== units.length) {
          reject(new Error(`systemctl is-active gave ${states.length} states for ${units.length} units${error ? `: ${error.message}` : ""}`));
          return;
        }
        resolve(new Set(units.filter((_, i) => ["active", "reloading", "activating"].includes(states[i]!))));
      });
    });
}
