# agenixd, built from this repository with buildNpmPackage. importNpmLock reads package-lock.json,
# so there is no dependency hash to update. sd-notify is a native addon: npm rebuilds it with
# node-gyp (python3) against libsystemd. The bundle in dist/ runs with nodejs through a wrapper.
{
  lib,
  buildNpmPackage,
  importNpmLock,
  nodejs,
  python3,
  pkg-config,
  systemdLibs,
  util-linux,
  makeWrapper,
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
    makeWrapper
  ];
  buildInputs = [ systemdLibs ];

  # esbuild bundles src/cli.ts into dist/; type checking is CI's job (`npm run typecheck`).
  buildPhase = ''
    runHook preBuild
    node scripts/bundle.mjs
    runHook postBuild
  '';

  # The default install keeps package.json's "files" (dist/) and the production node_modules,
  # where sd-notify's compiled addon lives; the bin link is replaced by a wrapper that pins nodejs
  # and puts mount(8) on PATH for the ramfs.
  postInstall = ''
    rm -f $out/bin/agenixd
    makeWrapper ${lib.getExe nodejs} $out/bin/agenixd \
      --add-flags $out/lib/node_modules/agenixd/dist/agenixd.mjs \
      --prefix PATH : ${lib.makeBinPath [ util-linux ]}
  '';

  meta = {
    description = packageJson.description;
    license = lib.licenses.mit;
    mainProgram = "agenixd";
    platforms = lib.platforms.linux;
  };
}
