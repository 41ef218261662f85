// The npm packages of the Nix package, which builds offline (docs/nix-build.md):
//
//   node scripts/npm-deps.mjs fetch DIR     every tarball package-lock.json locks, into DIR (nix/npm-deps.nix)
//   node scripts/npm-deps.mjs lock DIR      point ./package-lock.json at DIR's tarballs, for `npm ci --offline`
//   node scripts/npm-deps.mjs prune         reduce ./node_modules to what bin/agenixd runs (nix/package.nix)
//   node scripts/npm-deps.mjs hash [--write]  fetch into a scratch directory, print its NAR hash (--write: into nix/npm-deps.hash)
//
// The lockfile names no registry (npm's omit-lockfile-registry-resolved), so `fetch` lets npm
// fetch each locked name@version from whatever registry npm is configured with (its default one
// in the Nix build) and checks every tarball against the lockfile's sha512 itself. DIR holds the
// tarballs only, under names made from the lockfile alone, so its NAR hash depends on
// package-lock.json alone: nix/npm-deps.hash, checked by test/package-build.test.ts.
//
// Plain Node, no dependencies: it runs in the Nix build before anything is installed.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const hashFile = join(repo, "nix", "npm-deps.hash");

/** The platforms the flake builds for (flake.nix's systems), as npm names them. */
const platforms = [
  { os: "linux", cpu: "x64", libc: "glibc" },
  { os: "linux", cpu: "arm64", libc: "glibc" },
];

/** How many `npm pack` processes fetch at once: each fetches its share one package after another. */
const parallelFetches = 6;

class UsageError extends Error {}

/**
 * The registry packages of a lockfile (v2/v3) that `npm ci` installs on one of `platforms`,
 * one per name@version, each with its sha512 and the name of its tarball.
 */
function lockedTarballs(lock) {
  if (!(lock.lockfileVersion >= 2) || typeof lock.packages !== "object") {
    throw new Error("package-lock.json: lockfileVersion 2 or 3 expected (npm 7 or later writes them)");
  }
  const byFile = new Map();
  const entries = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === "" || entry.link || entry.inBundle) continue; // the project, workspaces, and packages inside another's tarball
    if (!forSomePlatform(entry)) continue;
    const name = entry.name ?? path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
    if (entry.resolved !== undefined || !/^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?$/.test(entry.version ?? "")) {
      throw new Error(`package-lock.json: ${path} is not a registry package (${entry.resolved ?? entry.version}); only registry packages are supported`);
    }
    const sha512 = (entry.integrity ?? "").split(/\s+/).find((h) => h.startsWith("sha512-"));
    if (!sha512) throw new Error(`package-lock.json: ${path} has no sha512 integrity`);
    const file = `${name.replace(/^@/, "").replace("/", "-")}-${entry.version}.tgz`;
    const spec = `${name}@${entry.version}`;
    const seen = byFile.get(file);
    if (seen && (seen.spec !== spec || seen.sha512 !== sha512)) {
      throw new Error(`package-lock.json: ${seen.spec} and ${spec} would share the tarball name ${file}`);
    }
    const tarball = seen ?? { spec, sha512, file };
    if (!seen) byFile.set(file, tarball);
    entries.push({ path, tarball });
  }
  return { tarballs: [...byFile.values()], entries };
}

/** Whether npm installs a package with these os/cpu/libc fields on one of `platforms`. */
function forSomePlatform(entry) {
  const allows = (list, value) => {
    if (!Array.isArray(list) || list.length === 0) return true;
    if (list.includes(`!${value}`)) return false;
    const wanted = list.filter((v) => !v.startsWith("!"));
    return wanted.length === 0 || wanted.includes(value);
  };
  return platforms.some((p) => allows(entry.os, p.os) && allows(entry.cpu, p.cpu) && allows(entry.libc, p.libc));
}

function readLock(dir) {
  return JSON.parse(readFileSync(join(dir, "package-lock.json"), "utf8"));
}

/** The SRI sha512 of a file's bytes. */
function sha512Of(file) {
  return `sha512-${createHash("sha512").update(readFileSync(file)).digest("base64")}`;
}

/** Environment for npm: no audit, fund or update checks, so that it asks the registry for tarballs only. */
function npmEnv() {
  return { ...process.env, npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" };
}

/** Runs `npm pack` on `specs` into `dest`; resolves to the file names npm wrote, by spec. */
function npmPack(specs, dest) {
  return new Promise((resolvePacked, reject) => {
    const npm = spawn("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dest, ...specs], {
      env: npmEnv(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    npm.stdout.on("data", (d) => (stdout += d));
    npm.stderr.on("data", (d) => (stderr += d));
    npm.on("error", reject);
    npm.on("close", (status) => {
      if (status !== 0) {
        reject(new Error(`npm could not fetch ${specs.join(" ")} from its registry (is the registry reachable?):\n${stderr.trim()}`));
        return;
      }
      const packed = new Map(JSON.parse(stdout).map((p) => [p.id, p.filename]));
      resolvePacked(packed);
    });
  });
}

/** `fetch DIR`: DIR (absent or empty) gets every locked tarball, checked against the lockfile. */
async function fetchTarballs(dir) {
  const { tarballs } = lockedTarballs(readLock(process.cwd()));
  mkdirSync(dir, { recursive: true });
  if (readdirSync(dir).length > 0) throw new UsageError(`${dir} is not empty`);
  const staging = mkdtempSync(join(tmpdir(), "agenixd-npm-pack-"));
  try {
    const shares = Array.from({ length: parallelFetches }, (_, i) => tarballs.filter((_, j) => j % parallelFetches === i)).filter((s) => s.length);
    const packed = await Promise.all(
      shares.map((share, i) => {
        const dest = join(staging, String(i));
        mkdirSync(dest);
        return npmPack(
          share.map((t) => t.spec),
          dest,
        ).then((files) => share.map((t) => ({ t, at: join(dest, files.get(t.spec) ?? "(not packed)") })));
      }),
    );
    for (const { t, at } of packed.flat()) {
      if (!existsSync(at)) throw new Error(`npm pack did not write ${t.spec}'s tarball`);
      const got = sha512Of(at);
      if (got !== t.sha512) throw new Error(`${t.spec}: the registry's tarball has ${got}, package-lock.json locks ${t.sha512}`);
      // a copy, not a rename: the Nix build's temporary directory and $out are different file systems
      copyFileSync(at, join(dir, t.file));
      chmodSync(join(dir, t.file), 0o644);
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return tarballs.length;
}

/** `lock DIR`: every locked package of ./package-lock.json resolves to its tarball in DIR. */
function lockToDir(dir) {
  const lock = readLock(process.cwd());
  const abs = resolve(dir);
  for (const { path, tarball } of lockedTarballs(lock).entries) {
    const file = join(abs, tarball.file);
    if (!existsSync(file)) {
      throw new Error(`${dir} has no ${tarball.file} (${path}): it was fetched for another package-lock.json; update nix/npm-deps.hash (docs/nix-build.md)`);
    }
    lock.packages[path].resolved = `file:${file}`;
  }
  writeFileSync(join(process.cwd(), "package-lock.json"), `${JSON.stringify(lock, null, 2)}\n`);
}

/**
 * `prune`: ./node_modules keeps the production packages only, and of a native addon only its
 * compiled build/Release/*.node: node-gyp's other files name the compiler, python and the build
 * directory, which would otherwise be in the package's closure. npm's own record of the tree
 * (.package-lock.json) goes too: it names the tarballs `lock` pointed at.
 */
function prune() {
  const r = spawnSync("npm", ["prune", "--omit=dev", "--no-save", "--offline", "--ignore-scripts"], { env: npmEnv(), stdio: "inherit" });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`npm prune failed (exit ${r.status})`);
  rmSync(join("node_modules", ".package-lock.json"), { force: true });
  for (const entry of readdirSync("node_modules", { withFileTypes: true })) {
    const dir = join("node_modules", entry.name);
    if (entry.isDirectory() && readdirSync(dir).length === 0) rmSync(dir, { recursive: true }); // scopes whose packages were all dev
  }
  for (const pkg of packageDirs("node_modules")) {
    const build = join(pkg, "build");
    if (!existsSync(join(pkg, "binding.gyp")) || !existsSync(build)) continue;
    const release = join(build, "Release");
    const addons = existsSync(release) ? readdirSync(release).filter((f) => f.endsWith(".node")) : [];
    if (addons.length === 0) throw new Error(`${pkg} is a native addon with no build/Release/*.node: was it built?`);
    const keep = mkdtempSync(join(pkg, ".addons-"));
    for (const f of addons) renameSync(join(release, f), join(keep, f));
    chmodSync(keep, 0o755);
    rmSync(build, { recursive: true });
    mkdirSync(build);
    renameSync(keep, release);
  }
}

/** The package directories under a node_modules directory, nested ones included. */
function packageDirs(nodeModules) {
  const out = [];
  for (const name of existsSync(nodeModules) ? readdirSync(nodeModules) : []) {
    if (name.startsWith(".")) continue;
    const dir = join(nodeModules, name);
    const dirs = name.startsWith("@") ? readdirSync(dir).map((n) => join(dir, n)) : [dir];
    for (const d of dirs) out.push(d, ...packageDirs(join(d, "node_modules")));
  }
  return out;
}

/** The NAR hash of `dir` in SRI form, as a fixed-output derivation's outputHash. */
function narHash(dir) {
  const r = spawnSync("nix-hash", ["--type", "sha256", dir], { encoding: "utf8" });
  if (r.error) throw new Error(`nix-hash (from Nix, or Debian's nix-bin) is needed to hash ${dir}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`nix-hash failed: ${r.stderr}`);
  return `sha256-${Buffer.from(r.stdout.trim(), "hex").toString("base64")}`;
}

/** `hash [--write]`: fetches into a scratch directory and prints its hash, or writes nix/npm-deps.hash. */
async function hash(write) {
  const scratch = mkdtempSync(join(tmpdir(), "agenixd-npm-deps-"));
  try {
    const dir = join(scratch, "deps");
    await fetchTarballs(dir);
    const sri = narHash(dir);
    if (write) {
      const old = existsSync(hashFile) ? readFileSync(hashFile, "utf8").trim() : "(none)";
      writeFileSync(hashFile, `${sri}\n`);
      process.stderr.write(old === sri ? `nix/npm-deps.hash is up to date: ${sri}\n` : `nix/npm-deps.hash: ${old} -> ${sri}\n`);
    } else {
      process.stdout.write(`${sri}\n`);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function main([command, ...args]) {
  switch (command) {
    case "fetch":
      if (args.length !== 1) throw new UsageError("fetch takes one directory");
      process.stderr.write(`fetched ${await fetchTarballs(args[0])} tarballs into ${args[0]}\n`);
      return;
    case "lock":
      if (args.length !== 1) throw new UsageError("lock takes one directory");
      return lockToDir(args[0]);
    case "prune":
      if (args.length !== 0) throw new UsageError("prune takes no argument");
      return prune();
    case "hash":
      if (args.length > 1 || (args.length === 1 && args[0] !== "--write")) throw new UsageError("hash takes only --write");
      process.chdir(repo);
      return hash(args.length === 1);
    default:
      throw new UsageError(`unknown command ${command ?? "(none)"}`);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((err) => {
    process.stderr.write(`npm-deps: ${err.message}\n`);
    if (err instanceof UsageError) process.stderr.write("usage: node scripts/npm-deps.mjs fetch DIR | lock DIR | prune | hash [--write]\n");
    process.exitCode = 1;
  });
}
