// The mount point holds every generation on a ramfs, so plaintext never reaches a disk (or swap).
import { childProcess } from "./child-process.js";
import { readdirSync, statfsSync } from "node:fs";
import { dirname } from "node:path";
import { errnoCode, errnoWords, fsError } from "./errno.js";
import { nativeAddon } from "./native.js";
import { Dirs, TrustError, type Dir, type Trust } from "./secure-fs.js";

export const RAMFS_MAGIC = 0x858458f6;

const FILESYSTEMS: Readonly<Record<number, string>> = {
  0x01021994: "tmpfs", 0xef53: "ext4", 0x9123683e: "btrfs", 0x58465342: "xfs", 0x794c7630: "overlay", 0x2fc12fc1: "zfs",
};

export function isRamfs(path: string): boolean {
  return statfsSync(path).type >>> 0 === RAMFS_MAGIC;
}

/** The mount point and its parents may belong to root alone. */
export const ROOT_ONLY: Trust = { uids: [], gids: [], who: "root" };

/**
 * Makes the mount point (0751; missing parents 0755, all root's) and mounts a ramfs on it unless
 * one is already there; resolves to whether it mounted. The way there is walked without
 * following symlinks and every directory on it must be root's; the ramfs is mounted with
 * mount(2) (agenixd's addon) on /proc/self/fd/N of the directory so checked, so it lands there
 * whatever happens to the path meanwhile. Options: nodev, nosuid, mode=0751. Another filesystem
 * already mounted there (a tmpfs, say), or files in the directory, are refused rather than hidden
 * under a new ramfs: the live generation could be among them (docs/manifest.md).
 */
export async function ensureRamfs(mountPoint: string): Promise<boolean> {
  const dirs = new Dirs();
  try {
    const mp = openMountPoint(mountPoint, dirs, ROOT_ONLY);
    const type = statfsOf(mp, mountPoint);
    if (type === RAMFS_MAGIC) return false;
    if (mp.dev !== mp.parent!.dev) {
      throw new Error(
        `cannot use secretsMountPoint ${mountPoint}: a ${FILESYSTEMS[type] ?? `0x${type.toString(16)}`} filesystem is mounted there, not a ramfs; ` +
          `agenixd keeps secrets on a ramfs only and will not hide what is on it under a new one: unmount it (umount ${mountPoint}) and activate again`,
      );
    }
    let entries;
    try {
      entries = readdirSync(mp.op);
    } catch (e) {
      throw fsError(e, mountPoint);
    }
    if (entries.length > 0) {
      throw new Error(
        `cannot use secretsMountPoint ${mountPoint}: it is not a ramfs and holds ${entries.slice(0, 5).join(", ")}${entries.length > 5 ? ", …" : ""}, ` +
          `which a ramfs mounted on it would hide; move them away`,
      );
    }
    try {
      nativeAddon().mountRamfs(mp.op);
    } catch (e) {
      const code = errnoCode(e);
      throw new Error(`cannot mount a ramfs on ${mountPoint}: mount(2) failed: ${code === undefined ? (e as Error).message : errnoWords(code)}`);
    }
  } finally {
    dirs.close();
  }
  if (!isRamfs(mountPoint)) throw new Error(`mounted a ramfs on ${mountPoint} but statfs does not report one`);
  return true;
}

function statfsOf(dir: Dir, shown: string): number {
  try {
    return statfsSync(dir.op).type >>> 0;
  } catch (e) {
    throw fsError(e, shown);
  }
}

/**
 * The mount point, opened without following symlinks; it and every directory above it must
 * belong to root (`trust`). Missing ones are made: parents 0755 (so consumers can reach
 * secretsDir's target), the mount point 0751.
 */
export function openMountPoint(mountPoint: string, dirs: Dirs, trust: Trust): Dir {
  try {
    dirs.dir(dirname(mountPoint), trust, { uid: -1, gid: -1, mode: 0o755 });
    return dirs.dir(mountPoint, trust, { uid: -1, gid: -1, mode: 0o751 });
  } catch (e) {
    throw new Error(`${e instanceof TrustError ? "refusing to use" : "cannot use"} secretsMountPoint ${mountPoint}: ${(e as Error).message}`);
  }
}

/**
 * Runs a command without input and with its output discarded; its complaints go to our stderr
 * (the journal), just before the error this rejects with when it does not exit 0. Not piping
 * stderr spares a stream and the event-loop turns of its end (~1.3 ms in all). systemctl runs
 * through it (src/units.ts); the snapshot's warm-up runs it too, to compile this path.
 */
export function runCommand(command: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = childProcess().spawn(command, args, { stdio: ["ignore", "ignore", "inherit"] });
    child.on("error", (e) => {
      const code = errnoCode(e);
      reject(new Error(`cannot run ${command}: ${code === undefined ? e.message : errnoWords(code)}`));
    });
    child.on("close", (code, signal) => {
      if (code === 0) return resolve();
      reject(new Error(signal ? `${command} was killed by ${signal}` : `${command} exited with status ${code} (its message is just above)`));
    });
  });
}
