# agenixd, built from this repository offline (docs/nix-build.md). The npm packages come from
# ./npm-deps.nix, a fixed-output derivation of the tarballs package-lock.json locks;
# scripts/npm-deps.mjs points a copy of the lockfile at them for `npm ci --offline`. sd-notify is a
# native addon: node-gyp (python3) builds it against nodejs's headers and libsystemd. bin/agenixd
# runs dist/agenixd.blob, a V8 startup snapshot built here by the same nodejs that runs it (a
# snapshot only starts on the node that made it).
{
  lib,
  stdenv,
  callPackage,
  nodejs,
  python3,
  pkg-config,
  systemdLibs,
  util-linux,
  makeBinaryWrapper,
}:
let
  packageJson = lib.importJSON ../package.json;

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
    pkg-config
    makeBinaryWrapper
  ];
  # nodejs runs bin/agenixd: fixup points the installed scripts' `#!/usr/bin/env node` at it.
  buildInputs = [
    nodejs
    systemdLibs
  ];

  env = {
    # Native addons are built against nodejs's own headers (include/node), never downloaded ones.
    npm_config_nodedir = "${nodejs}";
    npm_config_node_gyp = nodeGyp;
    npm_config_offline = "true";
    npm_config_audit = "false";
    npm_config_fund = "false";
    npm_config_update_notifier = "false";
  };

  # Installs node_modules from npmDeps alone, then runs the install scripts: sd-notify's node-gyp
  # build and esbuild's check of its platform binary (@esbuild/linux-*). node-gyp is on PATH for
  # them and for scripts/bundle.mjs.
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

  # $out/lib/node_modules/agenixd holds package.json, dist/ and the production node_modules, where
  # sd-notify's compiled addon lives (`npm-deps.mjs prune` drops the dev packages and node-gyp's
  # intermediate files). bin/agenixd is a compiled wrapper that pins nodejs, starts it from the
  # snapshot with the V8 flags it was built with (package.json's config.snapshotNodeFlags) and puts
  # mount(8) on PATH for the ramfs. V8 flags from NODE_OPTIONS would make node refuse the
  # snapshot, so they are dropped. The glibc tunables (package.json's config.glibcTunables;
  # scripts/launch.ts says why) put node's large malloc blocks, the 5.6 MB blob first, on
  # transparent huge pages.
  installPhase = ''
    runHook preInstall
    node scripts/npm-deps.mjs prune
    pkg="$out/lib/node_modules/agenixd"
    mkdir -p "$pkg" "$out/bin"
    cp -r package.json dist node_modules "$pkg/"
    makeBinaryWrapper ${lib.getExe nodejs} $out/bin/agenixd \
      --add-flags "${packageJson.config.snapshotNodeFlags} --snapshot-blob $out/lib/node_modules/agenixd/dist/agenixd.blob --" \
      --unset NODE_OPTIONS \
      --prefix GLIBC_TUNABLES : ${lib.escapeShellArg packageJson.config.glibcTunables} \
      --prefix PATH : ${lib.makeBinPath [ util-linux ]}
    runHook postInstall
  '';

  # The tarballs and the addon's build tools stay out of the closure.
  disallowedReferences = [
    npmDeps
    python3
  ];

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    $out/bin/agenixd --help | grep -q '^usage: agenixd'
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
