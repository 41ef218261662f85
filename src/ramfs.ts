// The mount point holds every generation on a ramfs, so plaintext never reaches a disk (or swap).
import { spawn } from "node:child_process";
import { accessSync, constants, lstatSync, mkdirSync, statSync, statfsSync } from "node:fs";
import { describeError } from "./errno.js";

export const RAMFS_MAGIC = 0x858458f6;

export function isRamfs(path: string): boolean {
  return statfsSync(path).type >>> 0 === RAMFS_MAGIC;
}

/**
 * Creates the mount point (0751) and mounts a ramfs on it unless one is already there; resolves
 * to whether it mounted. Everything up to starting mount(8) runs at the call, so the caller can
 * decrypt while mount runs and await the result before writing the first file.
 */
export async function ensureRamfs(mountPoint: string): Promise<boolean> {
  mkdirSync(mountPoint, { recursive: true, mode: 0o751 });
  if (!lstatSync(mountPoint).isDirectory()) throw new Error(`secretsMountPoint ${mountPoint} is not a directory`);
  if (isRamfs(mountPoint)) return false;
  try {
    await runCommand(findMount(), ["-t", "ramfs", "none", mountPoint, "-o", "nodev,nosuid,mode=0751"]);
  } catch (e) {
    throw new Error(`cannot mount a ramfs on ${mountPoint}: ${(e as Error).message}`);
  }
  if (!isRamfs(mountPoint)) throw new Error(`mounted a ramfs on ${mountPoint} but statfs does not report one`);
  return true;
}

/** Where mount(8) is looked for when neither AGENIXD_MOUNT nor PATH has it. */
export const MOUNT_FALLBACKS: readonly string[] = ["/run/current-system/sw/bin/mount", "/usr/bin/mount", "/bin/mount"];

/**
 * mount(8)'s absolute path: $AGENIXD_MOUNT when set (the NixOS unit sets it: a unit's PATH has no
 * util-linux), else the first `mount` on PATH, else the first of `fallbacks` that exists.
 */
export function findMount(env: NodeJS.ProcessEnv = process.env, fallbacks: readonly string[] = MOUNT_FALLBACKS): string {
  const configured = env.AGENIXD_MOUNT;
  if (configured !== undefined && configured !== "") {
    if (!configured.startsWith("/")) throw new Error(`AGENIXD_MOUNT must be an absolute path to mount(8), got "${configured}"`);
    return configured;
  }
  const onPath = (env.PATH ?? "").split(":").filter((dir) => dir.startsWith("/")).map((dir) => `${dir.replace(/\/+$/, "")}/mount`);
  for (const candidate of [...onPath, ...fallbacks]) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not there, or not executable: the next one
    }
  }
  throw new Error(
    `cannot find mount(8): AGENIXD_MOUNT is not set, no executable mount in PATH (${env.PATH ?? "unset"}), nor at ${fallbacks.join(", ")}`,
  );
}

/**
 * Runs a command without input and with its output discarded; its complaints go to our stderr
 * (the journal), just before the error this rejects with when it does not exit 0. Not piping
 * stderr spares a start a stream and the event-loop turns of its end (~1.3 ms in all). The
 * snapshot's warm-up runs it too, to compile this path.
 */
export function runCommand(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "inherit"] });
    child.on("error", (e) => reject(new Error(`cannot run ${command}: ${describeError(e)}`)));
    child.on("close", (code, signal) => {
      if (code === 0) return resolve();
      reject(new Error(signal ? `${command} was killed by ${signal}` : `${command} exited with status ${code} (its message is just above)`));
    });
  });
}
