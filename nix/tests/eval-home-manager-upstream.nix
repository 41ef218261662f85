# Evaluates ../home-manager.nix inside Home Manager's own module system: its modules/modules.nix
# list (the full set of core modules; programs and services of the minimal set), its lib
# extensions, its option types and checks (`_module.check`), and its systemd.nix, which turns
# `systemd.user.services` into the unit files that `home-manager switch` links. As Home Manager's
# NixOS module evaluates it with `home-manager.useGlobalPkgs` (no nixpkgs module of its own).
#
# Nothing is built or written (nix-instantiate --eval writes no store path): packages are stand-ins
# with fixed store paths; writeText gives a path named by its text's hash, and writeTextFile (which
# systemd.nix writes units with) a store path followed by "//text:" and the text, so that the unit
# text Home Manager renders can be read back from the source it links.
#
# Arguments:
#   lib          nixpkgs' lib (imported)
#   homeManager  a Home Manager source tree (path)
#   nixpkgs      a nixpkgs tree (path); Home Manager imports nixos/modules/misc/{assertions,meta}.nix
#                and lib/ from it
#   config       a module: the configuration under test
# Result: { assertions (messages of the failed ones), warnings, service (Home Manager's merged
#   systemd.user.services.agenixd), units (xdg.configFile names under systemd/user/),
#   unitText (the agenixd.service file Home Manager writes), manifest, secrets }.
{
  lib,
  homeManager,
  nixpkgs,
  config,
}:
let
  fakePackage = import ./fake-package.nix;
  writtenAs = name: text: "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" text)}-${name}//text:${text}";
  textOf = source: lib.concatStringsSep "//text:" (lib.tail (lib.splitString "//text:" source));
  pkgs = {
    path = nixpkgs;
    inherit lib;
    stdenv.hostPlatform = {
      isLinux = true;
      isDarwin = false;
      system = "x86_64-linux";
    };
    agenixd = fakePackage "agenixd";
    systemd = fakePackage "systemd";
    glibcLocales = fakePackage "glibc-locales" // {
      version = "2.40";
    };
    # nixpkgs' pkgs.formats.ini, as far as systemd.nix declares it (systemd.user.settings).
    formats.ini = _: {
      type = lib.types.attrsOf (lib.types.attrsOf lib.types.anything);
      generate = name: value: builtins.toFile name (lib.generators.toINI { } value);
    };
    writeText = name: text: "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" text)}-${name}";
    writeTextFile = { name, text, ... }: writtenAs name text;
  };

  extendedLib = import (homeManager + "/modules/lib/stdlib-extended.nix") lib;

  # autojump.nix, of the minimal set, defines programs.fish, which only the full set declares.
  undeclaredByMinimalSet = {
    options.programs.fish = lib.mkOption {
      type = lib.types.attrsOf lib.types.anything;
      default = { };
    };
  };

  eval = extendedLib.evalModules {
    class = "homeManager";
    specialArgs.modulesPath = toString homeManager + "/modules";
    modules =
      import (homeManager + "/modules/modules.nix") {
        inherit pkgs;
        lib = extendedLib;
        check = true;
        useNixpkgsModule = false;
        minimal = true;
      }
      ++ [
        undeclaredByMinimalSet
        ../home-manager.nix
        config
      ];
  };
  c = eval.config;
  unitFiles = lib.filterAttrs (name: _: lib.hasPrefix "systemd/user/" name) c.xdg.configFile;
  # systemd.nix's source is writeTextFile's output plus "/<unit>".
  unitText = name: lib.removeSuffix "/${name}" (textOf unitFiles."systemd/user/${name}".source);
in
{
  assertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  inherit (c) warnings;
  service = c.systemd.user.services.agenixd or null;
  units = builtins.attrNames unitFiles;
  unitText = if unitFiles ? "systemd/user/agenixd.service" then unitText "agenixd.service" else null;
  tabbyUnitText = if unitFiles ? "systemd/user/tabby-agent.service" then unitText "tabby-agent.service" else null;
  manifest = builtins.fromJSON c.age.manifestJSON;
  secrets = lib.mapAttrs (_: s: { inherit (s) path mode symlink; }) c.age.secrets;
  secretsDir = c.age.secretsDir;
}
