// The mount point holds every generation on a ramfs, so plaintext never reaches a disk (or swap).
import { execFileSync } from "node:child_process";
import { lstatSync, mkdirSync, statfsSync } from "node:fs";

export const RAMFS_MAGIC = 0x858458f6;

export function isRamfs(path: string): boolean {
  return statfsSync(path).type >>> 0 === RAMFS_MAGIC;
}

/** Creates the mount point (0751) and mounts a ramfs on it unless one is already there. Returns whether it mounted. */
export function ensureRamfs(mountPoint: string): boolean {
  mkdirSync(mountPoint, { recursive: true, mode: 0o751 });
  const st = lstatSync(mountPoint);
  if (!st.isDirectory()) throw new Error(`secretsMountPoint ${mountPoint} is not a directory`);
  if (isRamfs(mountPoint)) return false;
  try {
    execFileSync("mount", ["-t", "ramfs", "none", mountPoint, "-o", "nodev,nosuid,mode=0751"], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`cannot mount a ramfs on ${mountPoint}: ${stderr || (e as Error).message}`);
  }
  if (!isRamfs(mountPoint)) throw new Error(`mounted a ramfs on ${mountPoint} but statfs does not report one`);
  return true;
}
