// The mount point holds every generation on a ramfs, so plaintext never reaches a disk (or swap).
import { spawn } from "node:child_process";
import { lstatSync, mkdirSync, statfsSync } from "node:fs";

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
    await runCommand("mount", ["-t", "ramfs", "none", mountPoint, "-o", "nodev,nosuid,mode=0751"]);
  } catch (e) {
    throw new Error(`cannot mount a ramfs on ${mountPoint}: ${(e as Error).message}`);
  }
  if (!isRamfs(mountPoint)) throw new Error(`mounted a ramfs on ${mountPoint} but statfs does not report one`);
  return true;
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
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code === 0) return resolve();
      reject(new Error(signal ? `${command} was killed by ${signal}` : `${command} exited with status ${code} (its message is just above)`));
    });
  });
}
