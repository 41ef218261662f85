// Serialises activations that share a secretsMountPoint: flock(2) on a lock file beside the mount
// point, `<parent>/.<name>.lock` (/run/.agenix.d.lock by default). The file is root's, mode 0600,
// so no other user can open it, and an open descriptor is all flock needs: only root can hold the
// lock. The kernel releases it when the holder's descriptor closes, also when the holder is killed,
// so nothing is ever stale. The file is never removed (a waiter that opened it before its removal
// would lock a file nobody else sees).
//
// The way to the lock file is walked like every path root writes (src/secure-fs.ts): without
// following symlinks, every directory root's, before anything is created, so a lock beside a
// mount point below a user's directory is refused, not created there.
//
// A lock file that is a symbolic link, not a regular file, not root's or open to other users was
// not made by agenixd: it is refused, never followed or repaired, and the activation fails with the
// reason (whoever could plant it in root's directory could do worse).
import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { nativeAddon } from "./native.js";
import { Dirs, TrustError, lstatIn, type Dir, type Trust } from "./secure-fs.js";

export interface Lock {
  release(): Promise<void>;
}

/** The lock file of a mount point. */
export function lockPath(mountPoint: string): string {
  return join(dirname(mountPoint), `.${basename(mountPoint)}.lock`);
}

const POLL_MS = 50;

export interface LockOptions {
  timeoutMs?: number;
  onWait?: () => void;
  /** Who may own the directories on the way: root (and the process itself) unless given. */
  trust?: Trust;
}

export async function acquireLock(mountPoint: string, options: LockOptions = {}): Promise<Lock> {
  const dirs = new Dirs();
  try {
    return await lockIn(mountPoint, options, dirs);
  } finally {
    dirs.close();
  }
}

async function lockIn(mountPoint: string, options: LockOptions, dirs: Dirs): Promise<Lock> {
  const path = lockPath(mountPoint);
  const name = basename(path);
  const { flock } = nativeAddon();
  const timeoutMs = options.timeoutMs ?? 120_000;
  const deadline = Date.now() + timeoutMs;
  let parent: Dir;
  try {
    // Missing parents are made 0755 (as /run is): the mount point's consumers must traverse them.
    parent = dirs.dir(dirname(path), options.trust ?? { uids: [], gids: [], who: "root" }, { uid: -1, gid: -1, mode: 0o755 });
  } catch (e) {
    throw new Error(`${e instanceof TrustError ? "refusing to lock" : "cannot lock"} ${path}: ${(e as Error).message}`);
  }
  let waited = false;
  for (;;) {
    const file = openLockFile(parent, name, path);
    try {
      while (!flock(file.fd)) {
        if (Date.now() > deadline) throw new Error(`the lock ${path} is still held after ${Math.round(timeoutMs / 1000)} s${describeHolder(file.ino)}`);
        if (!waited) options.onWait?.();
        waited = true;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
    } catch (e) {
      closeSync(file.fd);
      throw e;
    }
    // Taken. Only root can replace the file, and agenixd never does; should it have happened
    // while we waited, the lock of a file no longer at `path` excludes nobody: start over.
    const now = lstatIn(parent, name);
    if (now && now.ino === file.ino && now.dev === file.dev) {
      return { release: async () => closeSync(file.fd) };
    }
    closeSync(file.fd);
  }
}

interface LockFile {
  readonly fd: number;
  readonly dev: number;
  readonly ino: number;
}

function openLockFile(parent: Dir, name: string, path: string): LockFile {
  let fd: number;
  try {
    // Relative to the directory held open; O_NOFOLLOW: a symbolic link is refused, not followed;
    // O_NONBLOCK: a FIFO cannot hang the open.
    fd = openSync(`${parent.op}/${name}`, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP") throw new Error(`lock file ${path} is a symbolic link; agenixd refuses it (remove it)`);
    if (code === "EISDIR") throw new Error(`lock file ${path} is a directory; agenixd refuses it (remove it)`);
    throw new Error(`cannot open the lock file ${path}: ${(e as Error).message}`);
  }
  const st = fstatSync(fd);
  const owner = process.geteuid!();
  const problem = !st.isFile()
    ? "is not a regular file"
    : st.uid !== owner
      ? `belongs to uid ${st.uid}, not to agenixd's uid ${owner}`
      : (st.mode & 0o077) !== 0
        ? `is open to other users (mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}, not 0600)`
        : undefined;
  if (problem) {
    closeSync(fd);
    throw new Error(`lock file ${path} ${problem}; agenixd refuses it (remove it)`);
  }
  return { fd, dev: st.dev, ino: st.ino };
}

/** ", held by pid N (comm)" from /proc/locks, for the timeout's message; empty if unknown. */
function describeHolder(ino: number): string {
  try {
    for (const line of readFileSync("/proc/locks", "utf8").split("\n")) {
      // "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"
      const f = line.trim().split(/\s+/);
      if (f[1] !== "FLOCK" || !f[5]?.endsWith(`:${ino}`)) continue;
      const pid = Number(f[4]);
      let comm = "";
      try {
        comm = ` (${readFileSync(`/proc/${pid}/comm`, "utf8").trim()})`;
      } catch {}
      return `, held by pid ${pid}${comm}`;
    }
  } catch {}
  return "";
}
