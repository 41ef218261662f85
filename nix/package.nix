# agenixd, built from this repository offline (docs/nix-build.md). The npm packages come from
# ./npm-deps.nix, a fixed-output derivation of the tarballs package-lock.json locks;
# scripts/npm-deps.mjs points a copy of the lockfile at them for `npm ci --offline`. agenixd's own
# native addon (native/: flock, core dumps off, sd_notify) is built by node-gyp (python3) against
# nodejs's headers. bin/agenixd is scripts/agenixd-launcher.sh: it runs dist/agenixd.blob, a V8
# startup snapshot built here, or the plain bundle dist/agenixd.cjs (with V8 code caches built
# here too) if node refuses the snapshot.
# node refuses a blob made by another Node release; it accepts it on any CPU of the architecture
# (the blob holds no CPU-specific code: scripts/bundle.mjs), so a binary cache, a remote builder or
# a deploy from another machine gives the host a snapshot it starts.
#
# Node.js: nodejs_24, named rather than nixpkgs' moving `nodejs` (24 since NixOS 26.05), which is
# the release CI tests the harness on; Node 22 is supported too:
# `agenixd.override { nodejs_24 = pkgs.nodejs_22; nodejs-slim_24 = pkgs.nodejs-slim_22; }`.
# It builds with nodejs_24 (npm, node-gyp, headers) and runs on nodejs-slim_24 where nixpkgs has
# it: the same node without npm, which would otherwise be in the runtime closure.
{
  lib,
  stdenv,
  callPackage,
  nodejs_24,
  nodejs-slim_24 ? null,
  python3,
  dash,
  makeBinaryWrapper,
}:
let
  packageJson = lib.importJSON ../package.json;

  nodejs = nodejs_24;
  # What bin/agenixd runs: the same Node release, without npm.
  runtimeNode = if nodejs-slim_24 != null then nodejs-slim_24 else nodejs;

  npmDeps = callPackage ./npm-deps.nix { inherit nodejs; };

  # node-gyp as nodejs's npm bundles it: the copy nixpkgs patches for its builds.
  nodeGyp = "${nodejs}/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js";

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../src
      ../scripts
      ../native
    ];
  };
in
stdenv.mkDerivation {
  pname = "agenixd";
  inherit (packageJson) version;
  inherit src;

  strictDeps = true;
  nativeBuildInputs = [
    nodejs
    python3
    makeBinaryWrapper
  ];
  # runtimeNode runs bin/agenixd: fixup points the installed scripts' `#!/usr/bin/env node` at it.
  buildInputs = [ runtimeNode ];

  env = {
    # Native addons are built against nodejs's own headers (include/node), never downloaded ones.
    npm_config_nodedir = "${nodejs}";
    npm_config_node_gyp = nodeGyp;
    npm_config_offline = "true";
    npm_config_audit = "false";
    npm_config_fund = "false";
    npm_config_update_notifier = "false";
  };

  # Installs node_modules from npmDeps alone, then runs the install scripts (esbuild's check of its
  # platform binary, @esbuild/linux-*). node-gyp is on PATH for scripts/bundle.mjs, which builds
  # agenixd's addon.
  configurePhase = ''
    runHook preConfigure
    export HOME="$TMPDIR" npm_config_cache="$TMPDIR/npm-cache"
    mkdir -p "$TMPDIR/node-gyp-bin"
    makeBinaryWrapper ${lib.getExe nodejs} "$TMPDIR/node-gyp-bin/node-gyp" --add-flags ${nodeGyp}
    export PATH="$TMPDIR/node-gyp-bin:$PATH"

    node scripts/npm-deps.mjs lock ${npmDeps}
    npm ci --offline --ignore-scripts
    patchShebangs node_modules
    npm rebuild --offline
    patchShebangs node_modules
    runHook postConfigure
  '';

  # esbuild bundles src/ into dist/ and node builds the snapshot from it (scripts/bundle.mjs);
  # type checking is CI's job (`npm run typecheck`).
  buildPhase = ''
    runHook preBuild
    node scripts/bundle.mjs
    runHook postBuild
  '';

  # $out/lib/node_modules/agenixd holds package.json and dist/: the bundles and their code
  # caches, the snapshot, the addon. Every npm package is bundled into dist/, so no node_modules is installed. bin/agenixd is
  # the launcher (scripts/agenixd-launcher.sh, run by dash): it pins nodejs, starts it from the
  # snapshot with the V8 flags it was built with (package.json's config.snapshotNodeFlags), falls
  # back to the plain bundle if node refuses the snapshot, drops NODE_OPTIONS (V8 flags there
  # would make node refuse it); it puts nothing on PATH (the ramfs is mounted with mount(2)). The
  # glibc tunables (package.json's config.glibcTunables; scripts/launch.ts says why) put node's
  # large malloc blocks, the 5.6 MB blob first, on transparent huge pages.
  installPhase = ''
    runHook preInstall
    pkg="$out/lib/node_modules/agenixd"
    mkdir -p "$pkg" "$out/bin"
    cp -r package.json dist "$pkg/"
    substitute scripts/agenixd-launcher.sh $out/bin/agenixd \
      --subst-var-by shell ${lib.getExe dash} \
      --subst-var-by node ${lib.getExe runtimeNode} \
      --subst-var-by dist "$pkg/dist" \
      --subst-var-by snapshotNodeFlags ${lib.escapeShellArg packageJson.config.snapshotNodeFlags} \
      --subst-var-by glibcTunables ${lib.escapeShellArg packageJson.config.glibcTunables}
    chmod +x $out/bin/agenixd
    runHook postInstall
  '';

  # The tarballs and the addon's build tools stay out of the closure;
  # nodejs_24 too when nodejs-slim_24 runs agenixd: npm stays out of the runtime closure.
  disallowedReferences = [
    npmDeps
    python3
  ]
  ++ lib.optional (nodejs-slim_24 != null) nodejs;

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    # runtimeNode starts the snapshot nodejs built: no fallback to the plain bundle.
    $out/bin/agenixd --help 2>launcher.err | grep -q '^usage: agenixd'
    if grep -q 'did not start the snapshot' launcher.err; then cat launcher.err >&2; exit 1; fi
    [ "$($out/bin/agenixd --version)" = "agenixd ${packageJson.version}" ]
    runHook postInstallCheck
  '';

  passthru = { inherit npmDeps; };

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "agenixd";
    platforms = [
      "x86_64-linux"
      "aarch64-linux"
    ];
  };
}
