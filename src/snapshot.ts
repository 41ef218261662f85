// Entry point of the V8 startup snapshot (dist/agenixd.blob), which bin/agenixd
// (scripts/agenixd-launcher.sh) runs as `node FLAGS --snapshot-blob agenixd.blob -- activate …`.
// scripts/bundle.mjs builds it with
// `node --build-snapshot`: this file is evaluated once at build time, so a start finds every module
// (pino, sshpk, node:crypto, …) already loaded, and the functions the warm-up (src/warm-up.ts) ran
// already compiled.
// docs/performance.md has the measurements.
//
// What modules compute when they load is the build's, not the machine's: pino's default pid and
// hostname (agenixd's logs carry neither), assert-plus's reading of NODE_NDEBUG (sshpk's argument
// checks stay on). So is V8's string hash seed (--no-rehash-snapshot; scripts/launch.ts says why),
// the same for every build (--random-seed in scripts/bundle.mjs: builds are alike but for a few
// dozen bytes of Node's own, docs/performance.md).
// process.env, argv, Math.random's seed and OpenSSL's state are the start's own.
// The JSON logger on fd 2 is the build's too (prepareJsonLogger); a start sets its level.
import { closeSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { startupSnapshot } from "node:v8";
import { loadAgeEncryptionWith } from "./age/hybrid.js";
import { main } from "./cli.js";
import { prepareJsonLogger } from "./log.js";
import { exitProcess } from "./exit.js";
import { printErr } from "./output.js";
import { readWarmUpMaterial, warmUp } from "./warm-up.js";

/** The blob's own location (from --snapshot-blob): agenixd's addon and age-encryption are found from there. */
function blobLocation(): URL {
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const path = arg === "--snapshot-blob" ? args[i + 1] : arg.startsWith("--snapshot-blob=") ? arg.slice("--snapshot-blob=".length) : undefined;
    if (path) return pathToFileURL(resolve(path));
  }
  throw new Error("agenixd: started from a snapshot, but no --snapshot-blob is among node's options");
}

if (!startupSnapshot.isBuildingSnapshot()) {
  throw new Error("this file builds dist/agenixd.blob (node --build-snapshot); run dist/agenixd.cjs instead");
}

const materialFile = process.env.AGENIXD_SNAPSHOT_WARMUP;
if (!materialFile) throw new Error("AGENIXD_SNAPSHOT_WARMUP must name the warm-up material (scripts/bundle.mjs sets it)");
// A failed warm-up rejects, unhandled: the build of the snapshot fails with it.
void warmUp(readWarmUpMaterial(materialFile));
prepareJsonLogger();

/**
 * scripts/agenixd-launcher.sh gives node a pipe as fd $AGENIXD_SNAPSHOT_STARTED_FD: a byte on it,
 * written before anything else, tells it that node accepted the blob and agenixd began. Without
 * it, the launcher knows that nothing was done and may run the plain bundle instead; with it,
 * a failure is agenixd's own and is not run a second time.
 */
function tellLauncherStarted(): boolean {
  const fd = process.env.AGENIXD_SNAPSHOT_STARTED_FD;
  if (fd === undefined) return true;
  delete process.env.AGENIXD_SNAPSHOT_STARTED_FD;
  try {
    if (!/^[1-9][0-9]*$/.test(fd)) throw new Error("not a file descriptor");
    writeSync(Number(fd), "S");
    closeSync(Number(fd)); // no child (systemctl, a plugin) may inherit it: the launcher reads until it closes
    return true;
  } catch (e) {
    printErr(`agenixd: cannot tell the launcher that the snapshot started (AGENIXD_SNAPSHOT_STARTED_FD=${fd}): ${(e as Error).message}\n`);
    return false;
  }
}

startupSnapshot.setDeserializeMainFunction(() => {
  // Nothing is done without the launcher's knowing: otherwise it could run agenixd a second time.
  if (!tellLauncherStarted()) process.exit(1);
  const blob = blobLocation();
  loadAgeEncryptionWith(async () => createRequire(blob)("./age-encryption.cjs") as typeof import("age-encryption"));
  // argv is [node, command, …]: a snapshot has no script path. As in src/main.ts, the process
  // exits as soon as main() resolves (src/exit.ts).
  main(process.argv.slice(1), blob).then(
    (status) => exitProcess(status),
    (e: unknown) => {
      printErr(`agenixd: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
});
