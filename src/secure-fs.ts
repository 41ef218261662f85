// File operations that never follow a planted symlink and never expose a byte before the file
// has its final owner and mode.
import {
  closeSync, constants, existsSync, fchmodSync, fchownSync, fstatSync, lstatSync, mkdirSync, chownSync, chmodSync,
  openSync, readSync, renameSync, symlinkSync, unlinkSync, writeSync,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";

export interface Ownership {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** Creates `path` (which must not exist) with no permissions, sets owner and mode, then writes `data`. */
export function writeNewFile(path: string, data: Uint8Array, own: Ownership): void {
  const fd = openSync(path, CREATE_FLAGS, 0o000);
  try {
    fchownSync(fd, own.uid, own.gid);
    fchmodSync(fd, own.mode);
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
  } catch (e) {
    closeSync(fd);
    unlinkSync(path);
    throw e;
  }
  closeSync(fd);
}

/** Reads a regular file without following a symlink at `path`; returns its bytes and ownership. */
export function readFileNoFollow(path: string): { data: Buffer; own: Ownership } {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error(`${path} is not a regular file`);
    const data = Buffer.alloc(st.size);
    for (let off = 0; off < data.length; ) {
      const n = readSync(fd, data, off, data.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return { data, own: { uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 } };
  } finally {
    closeSync(fd);
  }
}

/**
 * mkdir -p below `root` (which exists), each created directory getting `own`. Refuses symlinks on
 * the way. `known` remembers directories already made or checked, so a thousand secrets in one
 * directory cost one mkdir.
 */
export function makeDirs(root: string, relative: string, own: Ownership, known: Set<string> = new Set()): void {
  let dir = root;
  for (const segment of relative.split("/")) {
    if (segment === "" || segment === ".") continue;
    dir = join(dir, segment);
    if (known.has(dir)) continue;
    try {
      mkdirSync(dir, { mode: 0o700 });
      chownSync(dir, own.uid, own.gid);
      chmodSync(dir, own.mode);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (!lstatSync(dir).isDirectory()) throw new Error(`${dir} exists and is not a directory`);
    }
    known.add(dir);
  }
}

/** mkdir -p for the parents of a target outside the ramfs: created directories get 0755, as agenix's `mkdir -p` gives them. */
export function makeParentDirs(path: string): void {
  const missing: string[] = [];
  for (let dir = dirname(path); !existsSync(dir); dir = dirname(dir)) missing.unshift(dir);
  for (const dir of missing) {
    try {
      mkdirSync(dir, { mode: 0o700 });
      chmodSync(dir, 0o755);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
  }
}

/** A fresh name next to `path` for a temporary entry, renamed over `path` afterwards. */
export function tempNameBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.agenixd-${randomBytes(6).toString("hex")}`);
}

function refuseDirectory(path: string): void {
  try {
    if (lstatSync(path).isDirectory()) throw new Error(`refusing to replace the directory ${path}`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

/** Points `path` at `target` atomically: a symlink at a fresh temp name, renamed over `path`. */
export function replaceWithSymlink(path: string, target: string): void {
  refuseDirectory(path);
  const temp = tempNameBeside(path);
  symlinkSync(target, temp); // fails with EEXIST rather than following anything at `temp`
  try {
    renameSync(temp, path); // replaces a symlink at `path` itself, never what it points to
  } catch (e) {
    unlinkSync(temp);
    throw e;
  }
}

/** Replaces `path` with a new file holding `data`, owner and mode set before the first byte. */
export function replaceWithFile(path: string, data: Uint8Array, own: Ownership): void {
  refuseDirectory(path);
  const temp = tempNameBeside(path);
  writeNewFile(temp, data, own);
  try {
    renameSync(temp, path);
  } catch (e) {
    unlinkSync(temp);
    throw e;
  }
}
