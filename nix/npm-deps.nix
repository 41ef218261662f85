# The npm packages that nix/package.nix installs, as a fixed-output derivation: a directory of the
# tarballs package-lock.json locks (of the platform-specific ones, those for x86_64-linux and
# aarch64-linux, so that one hash serves both), fetched by npm from its default registry and
# checked against the lockfile's sha512 by scripts/npm-deps.mjs. The lockfile names no registry
# (npm's omit-lockfile-registry-resolved), which nixpkgs' importNpmLock and fetchNpmDeps need.
#
# ./npm-deps.hash is the directory's NAR hash and changes with package-lock.json:
# `node scripts/npm-deps.mjs hash --write` updates it, test/package-build.test.ts fails while it
# is stale (docs/nix-build.md).
{
  lib,
  stdenvNoCC,
  nodejs,
  cacert,
}:
stdenvNoCC.mkDerivation {
  name = "agenixd-npm-deps";

  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package-lock.json
      ../scripts/npm-deps.mjs
    ];
  };

  nativeBuildInputs = [ nodejs ];

  dontConfigure = true;

  buildPhase = ''
    runHook preBuild
    export HOME="$TMPDIR" npm_config_cache="$TMPDIR/npm-cache"
    node scripts/npm-deps.mjs fetch "$out"
    runHook postBuild
  '';

  dontInstall = true;
  dontFixup = true;

  # nixpkgs' node verifies TLS against OpenSSL's default store, which SSL_CERT_FILE names.
  SSL_CERT_FILE = "${cacert}/etc/ssl/certs/ca-bundle.crt";
  # The build daemon's proxy settings, and npm_config_registry for a mirror of npm's registry:
  # every tarball is checked against the lockfile whichever registry serves it.
  impureEnvVars = lib.fetchers.proxyImpureEnvVars ++ [ "npm_config_registry" ];

  outputHashMode = "recursive";
  outputHash = lib.fileContents ./npm-deps.hash;
}
