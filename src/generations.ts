// Generations: /run/agenix.d/N directories, the secretsDir symlink that selects one, and pruning.
import { readdirSync, readlinkSync, rmSync, chownSync, chmodSync, mkdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { TrustError, lstatIn, removeEmptyDirIn, replaceWithSymlinkIn, type Dir, type Dirs, type Ownership, type Trust } from "./secure-fs.js";

/** The generation number `secretsDir` points at, or undefined (no link, or not one of ours). */
export function currentGeneration(secretsDir: string, mountPoint: string): number | undefined {
  let target: string;
  try {
    target = readlinkSync(secretsDir);
  } catch {
    return undefined;
  }
  const n = generationNumber(basename(target));
  return n !== undefined && dirname(target) === mountPoint ? n : undefined;
}

function generationNumber(entry: string): number | undefined {
  return /^[1-9][0-9]*$/.test(entry) ? Number(entry) : undefined;
}

export function generationDir(mountPoint: string, n: number): string {
  return join(mountPoint, String(n));
}

/** Creates generation `n` afresh: a leftover directory of that number (an aborted run) is removed, never reused. */
export function createGeneration(mountPoint: string, n: number, own: Ownership): string {
  const dir = generationDir(mountPoint, n);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  chownSync(dir, own.uid, own.gid);
  chmodSync(dir, own.mode);
  return dir;
}

/**
 * The directory holding `secretsDir`, opened without following symlinks; it and every directory
 * above it must belong to root (`trust`). Missing ones are made 0755.
 */
export function openSecretsDirParent(secretsDir: string, dirs: Dirs, trust: Trust): Dir {
  try {
    return dirs.dir(dirname(secretsDir), trust, { uid: -1, gid: -1, mode: 0o755 });
  } catch (e) {
    throw new Error(`${e instanceof TrustError ? "refusing to use" : "cannot use"} secretsDir ${secretsDir}: ${(e as Error).message}`);
  }
}

/**
 * Points `secretsDir` (in `parent`, from openSecretsDirParent) at `genDir` with one rename(2), so
 * readers see the old or the new generation, never neither. A real directory at `secretsDir`
 * (left by older agenix setups) is replaced only when empty.
 */
export function swapSecretsDir(secretsDir: string, parent: Dir, genDir: string, dirs: Dirs): void {
  const name = basename(secretsDir);
  dirs.removeStaleTemps(parent, name);
  if (lstatIn(parent, name)?.isDirectory() && removeEmptyDirIn(parent, name).length > 0) {
    throw new Error(`secretsDir ${secretsDir} is a real directory with files in it; move them away so it can become a symlink`);
  }
  replaceWithSymlinkIn(parent, name, genDir);
}

/** Removes generations beyond the newest `keep` (which include `current`); never `current`; ignores non-numeric entries. */
export function pruneGenerations(mountPoint: string, current: number, keep: number): number[] {
  const older = readdirSync(mountPoint)
    .map(generationNumber)
    .filter((n): n is number => n !== undefined && n !== current)
    .sort((a, b) => b - a);
  const kept = new Set(older.filter((n) => n < current).slice(0, keep - 1));
  const removed = older.filter((n) => !kept.has(n));
  for (const n of removed) rmSync(generationDir(mountPoint, n), { recursive: true, force: true });
  return removed;
}
