// File operations that never follow a planted symlink and never expose a byte before the file
// has its final owner and mode.
//
// Paths outside the ramfs (a secret's `path`, secretsDir, the mount point) may lie below
// directories other users can change. Those are reached through Dirs: every directory on the way
// is opened with O_DIRECTORY|O_NOFOLLOW relative to the one before it, through
// /proc/self/fd/<fd>/<name> (the kernel resolves the magic link to the opened directory itself,
// not by name: node has no openat(2)), its owner and mode are checked, and every create, rename
// and unlink names a single entry of such a held directory. Renaming a held directory elsewhere
// does not redirect what is written into it; a symlink put in place of a component is refused.
import {
  closeSync, constants, fchmodSync, fchownSync, fstatSync, lstatSync, mkdirSync, chownSync, chmodSync, openSync,
  readdirSync, readlinkSync, readSync, renameSync, rmdirSync, symlinkSync, unlinkSync, writeSync, type Stats,
} from "node:fs";
import { randomBytes } from "node:crypto";
import { join, posix } from "node:path";
import { FsError, errnoCode, fsError } from "./errno.js";

export interface Ownership {
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** ELOOP from an O_NOFOLLOW open means the final name is a symlink. */
const NOFOLLOW = { ELOOP: "is a symlink" };
const STICKY = 0o1000;
const MAX_SYMLINKS = 40;

/** A directory and how to name entries in it: `op` for system calls, `path` for messages. */
export interface Place {
  readonly op: string;
  readonly path: string;
}

/** A directory reached by its path: for trees only root can change (the ramfs below a checked mount point). */
export function pathPlace(dir: string): Place {
  return { op: dir, path: dir };
}

/** Who may own, or write to, a directory on the way to something root writes. Root (uid and gid 0) always may. */
export interface Trust {
  readonly uids: readonly number[];
  /** Groups that may have write permission on such a directory. */
  readonly gids: readonly number[];
  /** The allowed owners in words, for a refusal: "root or the secret's owner". */
  readonly who: string;
}

/** A directory on the way is owned or writable by someone not trusted: the write is refused. */
export class TrustError extends Error {
  override name = "TrustError";
}

/** A directory held open. */
export interface Dir extends Place {
  readonly fd: number;
  readonly parent: Dir | undefined;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  readonly dev: number;
}

/** Test seam: called between the steps of a walk, to change the tree there deterministically. */
export interface DirsHooks {
  afterMkdir?(path: string): void;
  beforeOpen?(path: string): void;
}

/** Root, as a reader trusts it: uid 0, and the process's own uid (the snapshot's warm-up runs as a Nix build user). */
export const ROOT_READS: Trust = { uids: [process.geteuid!()], gids: [], who: "root" };

/**
 * How root reads the files it is given (`.age` files, identities, templates): through held
 * directories, so that the file and every directory above it are owned by `trust` alone.
 */
export interface ReadSource {
  readonly dirs: Dirs;
  readonly trust: Trust;
}

/**
 * Runs `read` with `source`; without one, with a Dirs of its own trusting ROOT_READS, closed once
 * `read` has finished (or its promise has settled).
 */
export function withReadSource<T>(source: ReadSource | undefined, read: (source: ReadSource) => T): T {
  if (source !== undefined) return read(source);
  const dirs = new Dirs();
  let result: T;
  try {
    result = read({ dirs, trust: ROOT_READS });
  } catch (e) {
    dirs.close();
    throw e;
  }
  if (result instanceof Promise) return result.finally(() => dirs.close()) as T;
  dirs.close();
  return result;
}

/**
 * Directories opened without following symlinks, held for one activation (close() at the end),
 * so a thousand secrets below one directory cost one walk.
 */
export class Dirs {
  private readonly held = new Map<string, Dir>();
  private readonly temps = new Map<Dir, Map<string, string[]>>();

  constructor(private readonly hooks: DirsHooks = {}) {}

  /**
   * The directory at absolute, normal `path`. Each component is opened O_NOFOLLOW below the one
   * before, and each but / must be owned by root or one of `trust.uids`, and be writable by no one
   * else (world-writable only with the sticky bit, like /tmp). A symlink on the way is followed
   * only if root owns it and only root can change the directory it is in. `create`: missing
   * directories are made (mkdir -p) with that mode and owner (-1: the process's own).
   */
  dir(path: string, trust: Trust, create?: Ownership): Dir {
    return this.walk(path, trust, create, 0);
  }

  private walk(path: string, trust: Trust, create: Ownership | undefined, hops: number): Dir {
    const held = this.held.get(path);
    if (held !== undefined) {
      for (let d: Dir | undefined = held; d?.parent !== undefined; d = d.parent) checkTrust(d, trust);
      return held;
    }
    // Whoever owns / owns the machine (in a Nix build sandbox it shows as nobody): not checked.
    if (path === "/") return this.hold(path, openSync("/", DIR_FLAGS), undefined);
    const slash = path.lastIndexOf("/");
    if (slash < 0 || path.endsWith("/")) throw new Error(`not an absolute normal path: ${path}`);
    // The parent is checked before anything is created in it.
    const parent = this.walk(slash === 0 ? "/" : path.slice(0, slash), trust, create, hops);
    const name = path.slice(slash + 1);
    // The path as walked: with the symlinks followed on the way resolved, for messages and the cache.
    const real = `${parent.path === "/" ? "" : parent.path}/${name}`;
    if (real !== path && this.held.has(real)) return this.alias(path, this.walk(real, trust, create, hops));
    const op = `${parent.op}/${name}`;
    let created = false;
    if (create !== undefined) {
      try {
        mkdirSync(op, { mode: 0o700 });
        created = true;
        this.hooks.afterMkdir?.(real);
      } catch (e) {
        if (errnoCode(e) !== "EEXIST") throw fsError(e, real);
      }
    }
    this.hooks.beforeOpen?.(real);
    let fd: number;
    try {
      fd = openSync(op, DIR_FLAGS);
    } catch (e) {
      const target = this.trustedSymlink(e, parent, name);
      if (target === undefined) throw notADirectory(e, op, real);
      if (hops >= MAX_SYMLINKS) throw new FsError("ELOOP", `${real}: more than ${MAX_SYMLINKS} symlinks on the way`);
      return this.alias(path, this.walk(target, trust, create, hops + 1));
    }
    try {
      if (created) {
        // An owner of the parent (trusted, or the walk stops there) could have put another
        // directory at this name between mkdir and open: only the empty 0700 one made here is changed.
        const st = fstatSync(fd);
        if (st.uid !== process.geteuid!() || (st.mode & 0o7777) !== 0o700 || readdirSync(`/proc/self/fd/${fd}`).length > 0) {
          throw new TrustError(`${real} was replaced while it was being created`);
        }
        if (create!.uid !== -1 || create!.gid !== -1) fchownSync(fd, create!.uid, create!.gid);
        fchmodSync(fd, create!.mode);
      }
    } catch (e) {
      closeSync(fd);
      throw e instanceof TrustError ? e : fsError(e, real);
    }
    const dir = this.alias(path, this.hold(real, fd, parent));
    checkTrust(dir, trust);
    return dir;
  }

  /**
   * Reads a file root relies on (an `.age` file, a template, an identity) as the walk above
   * reaches a directory: every directory on the way must be root's alone (`trust`), the file is
   * opened O_NOFOLLOW|O_NONBLOCK|O_NOCTTY in its held parent, and `fstat` of the open file must
   * show a regular file of at most `limit.maxBytes`, owned by root (or `trust.uids`), that no one
   * else may write. A final symlink is followed only as the walk follows one: root's own, in a
   * directory only root can change (/etc/static links into the store). So no other user can
   * have put, swapped or changed a byte of what is read. `statFirst` also refuses a non-regular
   * file before opening it (opening a device can act by itself). Refusals are ReadRefused or
   * TrustError naming the path; other failures FsErrors keeping the errno code.
   */
  readFile(path: string, trust: Trust, limit: ReadLimit): Buffer {
    return this.readFileHop(path, trust, limit, 0).data;
  }

  /** readFile, with the fstat of the file read (owner and mode, for a warning). */
  readFileStat(path: string, trust: Trust, limit: ReadLimit): { data: Buffer; stat: Stats } {
    return this.readFileHop(path, trust, limit, 0);
  }

  private readFileHop(path: string, trust: Trust, limit: ReadLimit, hops: number): { data: Buffer; stat: Stats } {
    const slash = path.lastIndexOf("/");
    if (slash < 0 || path.endsWith("/") || posix.normalize(path) !== path) throw new FsError("EINVAL", `${path} is not an absolute normal path`);
    const parent = this.dir(slash === 0 ? "/" : path.slice(0, slash), trust);
    const name = path.slice(slash + 1);
    const op = `${parent.op}/${name}`;
    const shown = `${parent.path === "/" ? "" : parent.path}/${name}`;
    const followed = (e: unknown): { data: Buffer; stat: Stats } => {
      const target = this.trustedSymlink(e, parent, name);
      if (target === undefined) {
        const st = lstatOrUndefined(op, shown);
        if (st?.isSymbolicLink()) {
          throw new ReadRefused(shown, `is a symlink owned by uid ${st.uid} (not followed: only root's own, in a directory only root can change, is)`);
        }
        throw fsError(e, shown);
      }
      if (hops >= MAX_SYMLINKS) throw new FsError("ELOOP", `${shown}: more than ${MAX_SYMLINKS} symlinks on the way`);
      return this.readFileHop(target, trust, limit, hops + 1);
    };
    if (limit.statFirst) {
      const st = lstatOrUndefined(op, shown);
      if (st === undefined) throw new FsError("ENOENT", `${shown} does not exist`);
      if (st.isSymbolicLink()) return followed(Object.assign(new Error("symlink"), { code: "ELOOP" }));
      checkReadable(st, shown, trust, limit);
    }
    let fd: number;
    try {
      fd = openSync(op, READ_FLAGS);
    } catch (e) {
      const code = errnoCode(e);
      if (code === "ELOOP") return followed(e);
      // A socket, or a device without a driver (ENXIO) or on a nodev mount (EACCES): said as what it is.
      const st = code === "ENXIO" || code === "EACCES" || code === "ENODEV" ? lstatOrUndefined(op, shown) : undefined;
      if (st !== undefined && !st.isFile() && !st.isSymbolicLink()) throw new ReadRefused(shown, `is not a regular file (${fileKind(st)})`, "not-regular");
      throw fsError(e, shown);
    }
    try {
      const st = fstatSync(fd);
      checkReadable(st, shown, trust, limit);
      const data = Buffer.alloc(st.size);
      let read = 0;
      while (read < data.length) {
        const n = readSync(fd, data, read, data.length - read, null);
        if (n === 0) break; // shrunk since the fstat (root's own file): what is there is used
        read += n;
      }
      return { data: read === data.length ? data : data.subarray(0, read), stat: st };
    } catch (e) {
      throw e instanceof ReadRefused || e instanceof TrustError ? e : fsError(e, shown);
    } finally {
      closeSync(fd);
    }
  }

  private alias(path: string, dir: Dir): Dir {
    this.held.set(path, dir);
    return dir;
  }

  /**
   * Where a symlink met on the way leads, if it may be followed: only root's own symlink in a
   * directory only root can change (/var/run -> ../run), which no one else can swap. A symlink a
   * user could have made or replaced is never followed.
   */
  private trustedSymlink(e: unknown, parent: Dir, name: string): string | undefined {
    const code = errnoCode(e);
    if (code !== "ENOTDIR" && code !== "ELOOP") return undefined;
    try {
      const st = lstatSync(`${parent.op}/${name}`);
      if (!st.isSymbolicLink() || !this.isRoot(st.uid)) return undefined;
      checkTrust(parent, ROOT_READS);
      const target = readlinkSync(`${parent.op}/${name}`);
      const resolved = posix.normalize(target.startsWith("/") ? target : `${parent.path}/${target}`);
      return resolved.length > 1 && resolved.endsWith("/") ? resolved.slice(0, -1) : resolved;
    } catch {
      return undefined;
    }
  }

  private isRoot(uid: number): boolean {
    return uid === 0 || uid === ROOT_READS.uids[0];
  }

  private hold(path: string, fd: number, parent: Dir | undefined): Dir {
    const st = fstatSync(fd);
    const dir: Dir = { op: `/proc/self/fd/${fd}`, path, fd, parent, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777, dev: st.dev };
    this.held.set(path, dir);
    return dir;
  }

  /**
   * Removes `.NAME.agenixd-<hex>` entries (files or symlinks) beside `name`: what a copy or swap
   * killed between creating its temporary entry and renaming it leaves (a copy's may hold part
   * of a secret). The directory is listed once per activation. Returns the names removed.
   */
  removeStaleTemps(dir: Dir, name: string): string[] {
    let byTarget = this.temps.get(dir);
    if (byTarget === undefined) {
      byTarget = new Map();
      for (const entry of readdirSync(dir.op)) {
        const m = TEMP_NAME.exec(entry);
        if (m) byTarget.set(m[1]!, [...(byTarget.get(m[1]!) ?? []), entry]);
      }
      this.temps.set(dir, byTarget);
    }
    const stale = byTarget.get(name);
    if (stale === undefined) return [];
    byTarget.delete(name);
    const removed: string[] = [];
    for (const entry of stale) {
      try {
        if (lstatSync(`${dir.op}/${entry}`).isDirectory()) continue;
        unlinkSync(`${dir.op}/${entry}`);
        removed.push(entry);
      } catch (e) {
        if (errnoCode(e) !== "ENOENT") throw fsError(e, join(dir.path, entry));
      }
    }
    return removed;
  }

  close(): void {
    for (const dir of new Set(this.held.values())) closeSync(dir.fd);
    this.held.clear();
    this.temps.clear();
  }
}

/** Bounds of a file root reads. */
export interface ReadLimit {
  readonly maxBytes: number;
  /** maxBytes in words, for the refusal: "64 MiB". */
  readonly maxWords: string;
  /** lstat before the open, so a device or FIFO is refused without being opened. */
  readonly statFirst?: boolean;
}

/** A file root reads is not one it may rely on: not a regular file, too large, or not root's alone. */
export class ReadRefused extends Error {
  override name = "ReadRefused";
  constructor(
    readonly path: string,
    /** The refusal without the path: "is not a regular file (a FIFO)". */
    readonly what: string,
    readonly kind: "not-regular" | "too-large" | "untrusted" = "untrusted",
  ) {
    super(`${path} ${what}`);
  }
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

function checkReadable(st: Stats, path: string, trust: Trust, limit: ReadLimit): void {
  if (!st.isFile()) throw new ReadRefused(path, `is not a regular file (${fileKind(st)})`, "not-regular");
  if (st.uid !== 0 && !trust.uids.includes(st.uid)) throw new ReadRefused(path, `is owned by uid ${st.uid}, not ${trust.who}`);
  const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
  if (st.mode & 0o002) throw new ReadRefused(path, `is writable by every user (mode ${mode})`);
  if (st.mode & 0o020 && st.gid !== 0 && !trust.gids.includes(st.gid)) throw new ReadRefused(path, `is writable by group ${st.gid} (mode ${mode}), not only by ${trust.who}`);
  if (st.size > limit.maxBytes) throw new ReadRefused(path, `is larger than ${limit.maxWords} (limit ${limit.maxWords})`, "too-large");
}

/** What a file that is not a regular file is, in words. */
export function fileKind(info: Stats): string {
  if (info.isDirectory()) return "a directory";
  if (info.isFIFO()) return "a FIFO";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  if (info.isSocket()) return "a socket";
  if (info.isSymbolicLink()) return "a symlink";
  return "not a file";
}

/** ENOTDIR from O_DIRECTORY|O_NOFOLLOW: the name is a symlink or not a directory. Says which. */
function notADirectory(e: unknown, op: string, path: string): Error {
  const code = errnoCode(e);
  if (code === "ENOTDIR" || code === "ELOOP") {
    let what = "is not a directory";
    try {
      if (lstatSync(op).isSymbolicLink()) what = "is a symlink (not followed)";
    } catch {
      // gone again: the first answer stands
    }
    return new FsError(code, `${path} ${what}`);
  }
  return fsError(e, path);
}

function checkTrust(dir: Dir, trust: Trust): void {
  const ownerOk = dir.uid === 0 || trust.uids.includes(dir.uid);
  if (!ownerOk) throw new TrustError(`${dir.path} is owned by uid ${dir.uid}, not ${trust.who}`);
  const sticky = (dir.mode & STICKY) !== 0;
  const mode = dir.mode.toString(8).padStart(4, "0");
  if (dir.mode & 0o002 && !sticky) throw new TrustError(`${dir.path} is writable by every user (mode ${mode}, no sticky bit)`);
  if (dir.mode & 0o020 && !sticky && dir.gid !== 0 && !trust.gids.includes(dir.gid)) {
    throw new TrustError(`${dir.path} is writable by group ${dir.gid} (mode ${mode}), not only by ${trust.who}`);
  }
}

const TEMP_NAME = /^\.(.+)\.agenixd-[0-9a-f]{12}$/;

/** A fresh name for a temporary entry beside `name`, renamed over it afterwards. */
export function tempName(name: string): string {
  return `.${name}.agenixd-${randomBytes(6).toString("hex")}`;
}

/** Creates `path` (which must not exist) with no permissions, sets owner and mode, then writes `data`. */
export function writeNewFile(path: string, data: Uint8Array, own: Ownership): void {
  writeNew(path, path, data, own);
}

function writeNew(op: string, shown: string, data: Uint8Array, own: Ownership): void {
  let fd: number;
  try {
    fd = openSync(op, CREATE_FLAGS, 0o000);
  } catch (e) {
    throw fsError(e, shown, NOFOLLOW);
  }
  try {
    fchownSync(fd, own.uid, own.gid);
    fchmodSync(fd, own.mode);
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
  } catch (e) {
    closeSync(fd);
    unlinkSync(op);
    throw fsError(e, shown);
  }
  closeSync(fd);
}

/** Reads a regular file without following a symlink at `path`; returns its bytes and ownership. */
export function readFileNoFollow(path: string): { data: Buffer; own: Ownership } {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    throw fsError(e, path, NOFOLLOW);
  }
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
 * mkdir -p below `root` (which exists), each created directory getting `own`, by path: for the
 * ramfs, where only root can change anything. Refuses symlinks on the way. `known` remembers
 * directories already made or checked, so a thousand secrets in one directory cost one mkdir.
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
      if (errnoCode(e) !== "EEXIST") throw fsError(e, dir);
      if (!lstatSync(dir).isDirectory()) throw new Error(`${dir} exists and is not a directory`);
    }
    known.add(dir);
  }
}

function lstatOrUndefined(op: string, shown: string): Stats | undefined {
  try {
    return lstatSync(op);
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return undefined;
    throw fsError(e, shown);
  }
}

function refuseDirectory(op: string, shown: string): void {
  if (lstatOrUndefined(op, shown)?.isDirectory()) throw new Error(`refusing to replace the directory ${shown}`);
}

/** The target of the symlink `name` in `dir`, or undefined if there is none (or it is something else). */
export function readSymlinkIn(dir: Place, name: string): string | undefined {
  try {
    return readlinkSync(`${dir.op}/${name}`);
  } catch {
    return undefined;
  }
}

/** Points `name` in `dir` at `target` atomically: a symlink at a fresh temp name, renamed over it. */
export function replaceWithSymlinkIn(dir: Place, name: string, target: string): void {
  const shown = join(dir.path, name);
  refuseDirectory(`${dir.op}/${name}`, shown);
  const temp = `${dir.op}/${tempName(name)}`;
  try {
    symlinkSync(target, temp); // fails with EEXIST rather than following anything at `temp`
  } catch (e) {
    throw fsError(e, shown);
  }
  renameOver(temp, `${dir.op}/${name}`, shown); // replaces a symlink at `name` itself, never what it points to
}

/** Replaces `name` in `dir` with a new file holding `data`, owner and mode set before the first byte. */
export function replaceWithFileIn(dir: Place, name: string, data: Uint8Array, own: Ownership): void {
  const shown = join(dir.path, name);
  refuseDirectory(`${dir.op}/${name}`, shown);
  const temp = `${dir.op}/${tempName(name)}`;
  writeNew(temp, shown, data, own);
  renameOver(temp, `${dir.op}/${name}`, shown);
}

function renameOver(temp: string, op: string, shown: string): void {
  try {
    renameSync(temp, op);
  } catch (e) {
    unlinkSync(temp);
    throw fsError(e, shown);
  }
}

/** replaceWithSymlinkIn by path, for the ramfs. */
export function replaceWithSymlink(path: string, target: string): void {
  const slash = path.lastIndexOf("/");
  replaceWithSymlinkIn(pathPlace(path.slice(0, slash) || "/"), path.slice(slash + 1), target);
}

/** replaceWithFileIn by path, for the ramfs. */
export function replaceWithFile(path: string, data: Uint8Array, own: Ownership): void {
  const slash = path.lastIndexOf("/");
  replaceWithFileIn(pathPlace(path.slice(0, slash) || "/"), path.slice(slash + 1), data, own);
}

/** What is at `name` in `dir` (not followed), or undefined. */
export function lstatIn(dir: Place, name: string): Stats | undefined {
  return lstatOrUndefined(`${dir.op}/${name}`, join(dir.path, name));
}

/** Removes the empty directory `name` in `dir`; lists what is in it otherwise. */
export function removeEmptyDirIn(dir: Place, name: string): string[] {
  const entries = readdirSync(`${dir.op}/${name}`);
  if (entries.length === 0) {
    try {
      rmdirSync(`${dir.op}/${name}`);
    } catch (e) {
      throw fsError(e, join(dir.path, name));
    }
  }
  return entries;
}
