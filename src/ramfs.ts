// The mount point holds every generation on a ramfs, so plaintext never reaches a disk (or swap).
import { spawn } from "node:child_process";
import { lstatSync, mkdirSync, statfsSync } from "node:fs";

export const RAMFS_MAGIC = 0x858458f6;

export function isRamfs(path: string): boolean {
  return statfsSync(path).type >>> 0 === RAMFS_MAGIC;
}

/**
 * Creates the mount point (0751) and mounts a ramfs on it unless one is already there; resolves
 * to whether it mounted. The checks run at once; mount(8) runs as a child process, so the caller
 * can decrypt while it does and await the result before writing the first file.
 */
export function ensureRamfs(mountPoint: string): Promise<boolean> {
  try {
    mkdirSync(mountPoint, { recursive: true, mode: 0o751 });
    if (!lstatSync(mountPoint).isDirectory()) throw new Error(`secretsMountPoint ${mountPoint} is not a directory`);
    if (isRamfs(mountPoint)) return Promise.resolve(false);
  } catch (e) {
    return Promise.reject(e);
  }
  return new Promise((resolve, reject) => {
    const fail = (cause: string) => reject(new Error(`cannot mount a ramfs on ${mountPoint}: ${cause}`));
    const child = spawn("mount", ["-t", "ramfs", "none", mountPoint, "-o", "nodev,nosuid,mode=0751"], { stdio: ["ignore", "ignore", "pipe"] });
    const stderr: Buffer[] = [];
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", (e) => fail(e.message));
    child.on("close", (code, signal) => {
      if (code !== 0) return fail(Buffer.concat(stderr).toString().trim() || (signal ? `mount killed by ${signal}` : `mount exited with ${code}`));
      if (!isRamfs(mountPoint)) return reject(new Error(`mounted a ramfs on ${mountPoint} but statfs does not report one`));
      resolve(true);
    });
  });
}
