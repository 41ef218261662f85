// agenixd's native addon (native/agenixd.c): flock(2) for the activation lock, core dumps off,
// sd_notify(3) without libsystemd, mount(2) of the ramfs, isatty(3) and _exit(2).
// scripts/bundle.mjs builds it into dist/agenixd.node, beside the bundle and the snapshot blob;
// a V8 startup snapshot cannot hold an addon, so every start loads it (process.dlopen, ~0.2 ms).
import { fileURLToPath } from "node:url";

export interface NativeAddon {
  /** flock(fd, LOCK_EX|LOCK_NB): true if taken, false if another open file holds it; throws on any other error. */
  flock(fd: number): boolean;
  /** RLIMIT_CORE 0 and prctl(PR_SET_DUMPABLE, 0), both checked back; throws if either fails. */
  disableCoreDumps(): void;
  /** One sd_notify(3) datagram to `socket` ("/path" or "@abstract"), on behalf of `pid`; throws on failure. */
  notify(socket: string, pid: number, state: string): void;
  /** mount(2): a ramfs on `target`, MS_NODEV|MS_NOSUID, "mode=0751"; throws with the errno's name as code. */
  mountRamfs(target: string): void;
  /** isatty(3): whether `fd` is a terminal. */
  isatty(fd: number): boolean;
  /** _exit(2) with `status`: no exit handlers, no teardown (src/exit.ts). */
  exitNow(status: number): never;
}

let loaded: NativeAddon | undefined;

/**
 * Loads dist/agenixd.node, found from addonBase (the file URL of a file in dist/: the bundle or
 * the blob). From tsc's build/src/ in a checkout, the build's dist/ is used.
 */
export function loadNativeAddon(addonBase: string | URL): NativeAddon {
  if (loaded) return loaded;
  const candidates = [new URL("agenixd.node", addonBase)];
  if (/\/build\/src\/[^/]+$/.test(new URL(addonBase).pathname)) candidates.push(new URL("../../dist/agenixd.node", addonBase));
  let firstError: unknown;
  for (const candidate of candidates) {
    try {
      const addon = { exports: {} as NativeAddon };
      process.dlopen(addon, fileURLToPath(candidate));
      return (loaded = addon.exports);
    } catch (e) {
      firstError ??= e;
    }
  }
  throw new Error(`cannot load agenixd's native addon ${fileURLToPath(candidates[0]!)}: ${(firstError as Error).message}`);
}

/** The addon if loadNativeAddon() has loaded it. */
export function loadedNativeAddon(): NativeAddon | undefined {
  return loaded;
}

/** The loaded addon; src/lock.ts needs it. */
export function nativeAddon(): NativeAddon {
  if (!loaded) throw new Error("agenixd's native addon is not loaded (loadNativeAddon)");
  return loaded;
}

/**
 * Replaces the addon, or forgets it with undefined. Only for src/snapshot.ts's warm-up, which runs
 * while the snapshot is built, where no addon can be loaded.
 */
export function setNativeAddon(addon: NativeAddon | undefined): void {
  loaded = addon;
}
