// Entry point of the V8 startup snapshot (dist/agenixd.blob), which the NixOS package runs as
// `node --snapshot-blob agenixd.blob -- activate …`. scripts/bundle.mjs builds it with
// `node --build-snapshot`: this file is evaluated once at build time, so a start finds every module
// (pino, sshpk, node:crypto, …) already loaded, and the functions the warm-up ran already compiled.
// docs/performance.md has the measurements.
//
// What modules compute when they load is the build's, not the machine's: pino's default pid and
// hostname (agenixd's logs carry neither), assert-plus's reading of NODE_NDEBUG (sshpk's argument
// checks stay on). process.env, argv, Math.random's seed and OpenSSL's state are the start's own.
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { startupSnapshot } from "node:v8";
import { readAccounts } from "./accounts.js";
import { main, parseCommand } from "./cli.js";
import { decryptAll } from "./decrypt-all.js";
import { diffSecrets } from "./diff.js";
import { pruneGenerations, swapSecretsDir } from "./generations.js";
import { loadIdentities } from "./identities.js";
import { acquireLock } from "./lock.js";
import { createLogger } from "./log.js";
import { parseManifest } from "./manifest.js";
import { runQuietly } from "./ramfs.js";
import { makeDirs, writeNewFile } from "./secure-fs.js";

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
 * Runs what an activation runs, so that its code is compiled in the snapshot: all but mount(2)
 * and chown to root, since a Nix build is neither root nor may mount. Files go to the warm-up
 * directory with the builder's own uid and gid.
 */
async function warmUp(material: WarmUpMaterial): Promise<void> {
  parseCommand(["activate", "--manifest", join(material.dir, "manifest.json"), "--phase", "all"]);
  const log = createLogger({ destination: { write() {} }, pretty: false });
  const manifest = parseManifest({
    version: 1,
    secretsDir: join(material.dir, "agenix"),
    secretsMountPoint: join(material.dir, "agenix.d"),
    identityPaths: [material.sshKey, material.ageKey],
    keepGenerations: 1,
    secrets: [{ name: "warm-up", file: material.file, path: join(material.dir, "agenix/warm-up"), mode: "0400", owner: "0", group: "0", symlink: true }],
  });
  const lock = await acquireLock(manifest.secretsMountPoint);
  try {
    const identities = await loadIdentities(manifest.identityPaths, (w) => {
      throw new Error(`snapshot warm-up: identity ${w.path} not loaded: ${w.reason}`);
    });
    const [decrypted] = await decryptAll(manifest.secrets, identities);
    if (!decrypted?.ok) throw new Error(`snapshot warm-up: ${decrypted?.cause ?? "nothing decrypted"}`);
    const matches = decrypted.plaintext.toString() === material.plaintext;
    const own = { uid: process.getuid!(), gid: process.getgid!(), mode: 0o400 };
    const genDir = join(manifest.secretsMountPoint, "1");
    mkdirSync(genDir, { recursive: true });
    makeDirs(genDir, "nested", { ...own, mode: 0o751 });
    writeNewFile(join(genDir, "warm-up"), decrypted.plaintext, own);
    diffSecrets(genDir, [{ name: "warm-up", plaintext: decrypted.plaintext, own }]);
    swapSecretsDir(manifest.secretsDir, genDir);
    pruneGenerations(manifest.secretsMountPoint, 1, manifest.keepGenerations);
    decrypted.plaintext.fill(0);
    if (!matches) throw new Error("snapshot warm-up: the age file decrypted to the wrong plaintext");
    readAccounts();
    await runQuietly(process.execPath, ["--version"]); // as ensureRamfs runs mount(8)
    log.info({ generation: 1, installed: 1, failed: 0, added: ["warm-up"], changed: [], unchanged: 0, pruned: [] }, "generation 1 is active");
  } finally {
    await lock.release();
  }
}

/** The blob's own location (from --snapshot-blob), from which the sd-notify addon is resolved. */
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
  throw new Error("this file builds dist/agenixd.blob (node --build-snapshot); run dist/agenixd.mjs instead");
}

const materialFile = process.env.AGENIXD_SNAPSHOT_WARMUP;
if (!materialFile) throw new Error("AGENIXD_SNAPSHOT_WARMUP must name the warm-up material (scripts/bundle.mjs sets it)");
// A failed warm-up rejects, unhandled: the build of the snapshot fails with it.
void warmUp(JSON.parse(readFileSync(materialFile, "utf8")) as WarmUpMaterial);

startupSnapshot.setDeserializeMainFunction(() => {
  // argv is [node, command, …]: a snapshot has no script path.
  main(process.argv.slice(1), blobLocation()).then(
    (status) => (process.exitCode = status),
    (e: unknown) => {
      process.stderr.write(`agenixd: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
});
