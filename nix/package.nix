# agenixd, built from this repository with buildNpmPackage. importNpmLock reads package-lock.json,
# so there is no dependency hash to update. sd-notify is a native addon: npm rebuilds it with
# node-gyp (python3) against libsystemd. bin/agenixd runs dist/agenixd.blob, a V8 startup snapshot
# built here by the same nodejs that runs it (a snapshot only starts on the node that made it).
{
  lib,
  buildNpmPackage,
  importNpmLock,
  nodejs,
  python3,
  pkg-config,
  systemdLibs,
  util-linux,
  makeBinaryWrapper,
}:
let
  packageJson = lib.importJSON ../package.json;

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
buildNpmPackage {
  pname = "agenixd";
  inherit (packageJson) version;
  inherit src nodejs;

  npmDeps = importNpmLock { npmRoot = src; };
  npmConfigHook = importNpmLock.npmConfigHook;

  nativeBuildInputs = [
    python3
    pkg-config
    makeBinaryWrapper
  ];
  buildInputs = [ systemdLibs ];

  # esbuild bundles src/ into dist/ and node builds the snapshot from it (scripts/bundle.mjs);
  # type checking is CI's job (`npm run typecheck`).
  buildPhase = ''
    runHook preBuild
    node scripts/bundle.mjs
    runHook postBuild
  '';

  # The default install keeps package.json's "files" (dist/) and the production node_modules,
  # where sd-notify's compiled addon lives; the bin link is replaced by a compiled wrapper that
  # pins nodejs, starts it from the snapshot with the V8 flags it was built with (package.json's
  # config.snapshotNodeFlags) and puts mount(8) on PATH for the ramfs. V8 flags from NODE_OPTIONS
  # would make node refuse the snapshot, so they are dropped. The glibc tunables
  # (package.json's config.glibcTunables; scripts/launch.ts says why) put node's large malloc
  # blocks, the 5.6 MB blob first, on transparent huge pages.
  postInstall = ''
    rm -f $out/bin/agenixd
    makeBinaryWrapper ${lib.getExe nodejs} $out/bin/agenixd \
      --add-flags "${packageJson.config.snapshotNodeFlags} --snapshot-blob $out/lib/node_modules/agenixd/dist/agenixd.blob --" \
      --unset NODE_OPTIONS \
      --prefix GLIBC_TUNABLES : ${lib.escapeShellArg packageJson.config.glibcTunables} \
      --prefix PATH : ${lib.makeBinPath [ util-linux ]}
  '';

  doInstallCheck = true;
  installCheckPhase = ''
    runHook preInstallCheck
    $out/bin/agenixd --help | grep -q '^usage: agenixd'
    runHook postInstallCheck
  '';

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "agenixd";
    platforms = lib.platforms.linux;
  };
}
