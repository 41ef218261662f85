// Entry point of the V8 startup snapshot (dist/agenixd.blob), which bin/agenixd
// (scripts/agenixd-launcher.sh) runs as `node FLAGS --snapshot-blob agenixd.blob -- activate …`.
// scripts/bundle.mjs builds it with
// `node --build-snapshot`: this file is evaluated once at build time, so a start finds every module
// (pino, sshpk, node:crypto, …) already loaded, and the functions the warm-up ran already compiled.
// docs/performance.md has the measurements.
//
// What modules compute when they load is the build's, not the machine's: pino's default pid and
// hostname (agenixd's logs carry neither), assert-plus's reading of NODE_NDEBUG (sshpk's argument
// checks stay on). So is V8's string hash seed (--no-rehash-snapshot; scripts/launch.ts says why),
// the same for every build (--random-seed in scripts/bundle.mjs: builds are alike but for a few
// dozen bytes of Node's own, docs/performance.md).
// process.env, argv, Math.random's seed and OpenSSL's state are the start's own.
// The JSON logger on fd 2 is the build's too (prepareJsonLogger); a start sets its level.
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { startupSnapshot } from "node:v8";
import { readAccounts } from "./accounts.js";
import { activate, type ActivationResult, type Host } from "./activate.js";
import { loadAgeEncryptionWith } from "./age/hybrid.js";
import { main, parseCommand } from "./cli.js";
import { createLogger, prepareJsonLogger } from "./log.js";
import { readManifest, type ManifestFile } from "./manifest.js";
import { setNativeAddon } from "./native.js";
import { exitProcess } from "./exit.js";
import { createNotifier } from "./notify.js";
import { isRamfs, runCommand } from "./ramfs.js";
import { printErr } from "./output.js";

/**
 * The warm-up material scripts/bundle.mjs generates for each build: throwaway keys made for this
 * build alone and one age file encrypted to them. No real secret is ever near a snapshot build.
 */
interface WarmUpMaterial {
  readonly dir: string;
  /** An OpenSSH ed25519 private key file. */
  readonly sshKey: string;
  /** An age identity file (AGE-SECRET-KEY-1…). */
  readonly ageKey: string;
  /** An age file for the age key, and its plaintext. */
  readonly file: string;
  readonly plaintext: string;
}

/**
 * Runs activations as a start runs them, so that every function on the way is compiled (V8 keeps
 * the bytecode in the snapshot; what did not run is compiled at every start). A Nix build is
 * neither root nor may mount, so the host differs: files belong to the builder, and where the
 * ramfs would be mounted a child process runs (node --version), which compiles the path that
 * systemctl takes. Three runs: a first generation, an unchanged
 * second one (diff against the first, pruning it), and a users phase with nothing to do.
 */
async function warmUp(material: WarmUpMaterial): Promise<void> {
  const own = { uid: process.getuid!(), gid: process.getgid!() };
  const host: Host = {
    rootUid: own.uid,
    async ensureRamfs(mountPoint) {
      mkdirSync(mountPoint, { recursive: true, mode: 0o751 });
      isRamfs(mountPoint);
      await runCommand(process.execPath, ["--version"]);
    },
    readAccounts() {
      const machine = readAccounts();
      machine.uid("root");
      machine.gid("keys");
      return { uid: () => own.uid, gid: () => own.gid };
    },
  };
  const secretsDir = join(material.dir, "agenix");
  const secret = { file: material.file, mode: "0400", owner: "root", group: "keys" };
  const manifestFile: ManifestFile = {
    version: 1,
    secretsDir,
    secretsMountPoint: join(material.dir, "agenix.d"),
    identityPaths: [material.sshKey, material.ageKey],
    keepGenerations: 1,
    secrets: [
      { ...secret, name: "warm-up", path: join(secretsDir, "warm-up"), symlink: true },
      { ...secret, name: "nested/linked", path: join(material.dir, "etc/linked"), symlink: true },
      { ...secret, name: "copied", path: join(material.dir, "etc/copied"), symlink: false },
    ],
  };
  const manifestPath = join(material.dir, "manifest.json");
  writeFileSync(manifestPath, JSON.stringify(manifestFile));
  parseCommand(["activate", "--manifest", manifestPath, "--phase", "all"]);

  const sink = openSync("/dev/null", "w");
  // No addon can be loaded while a snapshot is built; the build is the only process that takes
  // its lock, a builder's core dumps hold nothing and no systemd listens. A start loads the real
  // one (src/cli.ts).
  const buildTimeAddon = {
    flock: () => true,
    disableCoreDumps() {},
    notify() {},
    mountRamfs() {
      throw new Error("snapshot warm-up: nothing is mounted at build time (the warm-up's host does not mount)");
    },
    isatty: () => false,
    exitNow(): never {
      throw new Error("snapshot warm-up: the build does not end through the addon");
    },
  };
  setNativeAddon(buildTimeAddon);
  // The warm-up's log lines pass through Node's Buffer pool, which the blob keeps: a fixed clock
  // keeps their "time" the same at every build (docs/performance.md, reproducible builds).
  const now = Date.now;
  Date.now = () => 0;
  try {
    const ctx = { log: createLogger({ pretty: false, fd: sink }), notify: createNotifier({ NOTIFY_SOCKET: "/warm-up" }, buildTimeAddon), host };
    const manifest = readManifest(manifestPath);
    expect(await activate(manifest, "all", ctx), 3, "first generation");
    const installed = readFileSync(join(secretsDir, "warm-up"), "utf8");
    if (installed !== material.plaintext) throw new Error("snapshot warm-up: the age file decrypted to the wrong plaintext");
    expect(await activate(manifest, "all", ctx), 3, "second generation");
    expect(await activate(manifest, "users", ctx), 0, "users phase");
  } finally {
    Date.now = now;
    setNativeAddon(undefined);
    closeSync(sink);
  }
}

function expect(result: ActivationResult, installed: number, what: string): void {
  if (result.failed.length > 0 || result.installed.length !== installed) {
    throw new Error(`snapshot warm-up, ${what}: ${JSON.stringify(result.failed)} (${result.installed.length} installed)`);
  }
}

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
void warmUp(JSON.parse(readFileSync(materialFile, "utf8")) as WarmUpMaterial);
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
