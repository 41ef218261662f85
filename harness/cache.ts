// Where the harness keeps what it builds (root images, scenario fixtures, machine state).
// Everything lives under one directory so CI can cache or wipe it as a unit.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

export const repoRoot = resolve(import.meta.dirname, "..", "..");

export function cacheDir(): string {
  const dir = process.env.AGENIXD_HARNESS_CACHE ?? join(repoRoot, ".cache", "harness");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A short stable key for a set of build inputs. */
export function inputsKey(inputs: unknown): string {
  return createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 16);
}

/**
 * Returns `<cache>/<name>-<key>`, building it first when absent. The build writes into a
 * temporary sibling that is renamed into place only on success, so an interrupted build
 * never leaves a half-made entry that later runs would trust.
 */
export async function cached(name: string, inputs: unknown, build: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(cacheDir(), `${name}-${inputsKey(inputs)}`);
  if (existsSync(dir)) return dir;
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  try {
    await build(partial);
    renameSync(partial, dir);
  } catch (error) {
    rmSync(partial, { recursive: true, force: true });
    // Another run built the same entry meanwhile: theirs is as good as ours.
    if (existsSync(dir)) return dir;
    throw error;
  }
  return dir;
}
