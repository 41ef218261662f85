// Entry point of the plain bundle (dist/agenixd.cjs, package.json's bin and the launcher's
// fallback): it loads agenixd itself (dist/agenixd-main.cjs, built from src/main.ts) and, when
// that requires them, sshpk.cjs and age-encryption.cjs, each with the V8 code cache made for it
// at build time (dist/NAME.code-cache). The cache holds the bytecode of every function a warm-up
// activation ran (src/warm-up.ts), so a start neither parses nor compiles them: the work a
// snapshot spares, for the node that built it. V8 refuses a cache made by another V8 or with
// other flags (and one for another source), and the script is then compiled as node would.
// Unlike the snapshot's check, the cache's does not include the CPU's features. V8 does not check
// a cache's integrity (bytes flipped in its middle pass), so each file starts with the SHA-256 of
// the rest, and a cache that does not match it is not handed to V8.
import { hash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import Module, { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { Script } from "node:vm";

/** agenixd itself, beside this file. */
export const MAIN_SCRIPT = "agenixd-main.cjs";

/** A cache bigger than this is no cache of ours (the largest is ~0.3 MB). */
const MAX_CACHE_BYTES = 64 << 20;

export function codeCacheOf(script: string): string {
  return script.replace(/\.cjs$/, ".code-cache");
}

export type CacheUse = "accepted" | "rejected" | "none";

/**
 * Compiles a CommonJS file as node's loader does (Module.wrap; a `#!` line kept as a comment, so
 * that the source keeps its length, which V8's cache check includes), with its code cache.
 */
export function compileScript(file: string): { script: Script; cache: CacheUse } {
  const source = readFileSync(file, "utf8");
  const cachedData = readCache(codeCacheOf(file));
  const script = new Script(Module.wrap(source.startsWith("#!") ? `//${source.slice(2)}` : source), { filename: file, cachedData });
  return { script, cache: cachedData === undefined ? "none" : script.cachedDataRejected ? "rejected" : "accepted" };
}

const DIGEST_BYTES = 32;

function readCache(path: string): Buffer | undefined {
  let file: Buffer;
  try {
    if (statSync(path).size > MAX_CACHE_BYTES) return undefined;
    file = readFileSync(path);
  } catch {
    return undefined; // no cache (a checkout's build/, a copy without them): compiled as node would
  }
  const data = file.subarray(DIGEST_BYTES);
  // A damaged file is as good as none, but V8 is told nothing, so a start says "rejected".
  return file.length > DIGEST_BYTES && file.subarray(0, DIGEST_BYTES).equals(hash("sha256", data, "buffer")) ? data : Buffer.alloc(0);
}

/** A code cache as readCache() wants it: the SHA-256 of V8's data, then the data. */
export function cacheFile(data: Buffer): Buffer {
  return Buffer.concat([hash("sha256", data, "buffer"), data]);
}

/** The scripts a process loaded through loadScript(), with what became of each one's cache. */
const loaded: { file: string; script: Script; cache: CacheUse }[] = [];
/** Each loaded script's module.exports, by path: one instance per file, as node's loader keeps. */
const exportsOf = new Map<string, unknown>();

/**
 * Runs a CommonJS file as node would, but compiled by compileScript(); its require() of a
 * `./NAME.cjs` beside it comes here too, every other one goes to node.
 */
export function loadScript(file: string): unknown {
  const compiled = compileScript(file);
  loaded.push({ file, ...compiled });
  const module = { exports: {} as unknown, filename: file, id: file, loaded: false };
  const nodeRequire = createRequire(file);
  const require = Object.assign((id: string): unknown => {
    if (!/^\.\/[\w.-]+\.cjs$/.test(id)) return nodeRequire(id);
    const beside = join(dirname(file), basename(id));
    return exportsOf.has(beside) ? exportsOf.get(beside) : loadScript(beside);
  }, { resolve: nodeRequire.resolve, cache: nodeRequire.cache, main: nodeRequire.main });
  const wrapper = compiled.script.runInThisContext() as (this: unknown, ...args: unknown[]) => void;
  wrapper.call(module.exports, module.exports, require, module, file, dirname(file));
  module.loaded = true;
  exportsOf.set(file, module.exports);
  return module.exports;
}

/** What became of each loaded script's code cache (for tests and the build's check). */
export function codeCacheUse(): readonly { file: string; cache: CacheUse }[] {
  return loaded.map(({ file, cache }) => ({ file, cache }));
}

/**
 * The build's step (scripts/bundle.mjs, in a process of its own): loads agenixd with the warm-up
 * material's path where src/main.ts looks for it, and writes each loaded script's code cache once
 * the warm-up has run and the process ends.
 */
export function produceCodeCaches(dir: string, warmUpMaterial: string): void {
  // src/warm-up.ts's CODE_CACHE_WARM_UP (not imported: this file stays small).
  (globalThis as Record<symbol, unknown>)[Symbol.for("agenixd.codeCacheWarmUp")] = warmUpMaterial;
  process.on("exit", (status) => {
    if (status !== 0) return;
    for (const { file, script } of loaded) writeFileSync(codeCacheOf(file), cacheFile(script.createCachedData()), { mode: 0o644 });
  });
  loadScript(join(dir, MAIN_SCRIPT));
}

// Started as a program (`node dist/agenixd.cjs …`), not required by the build or a test.
if (typeof module !== "undefined" && require.main === module) loadScript(join(__dirname, MAIN_SCRIPT));
