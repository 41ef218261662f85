# Evaluates ../home-manager.nix with nixpkgs' lib.evalModules and stand-ins for the Home Manager
# options it reads or sets (home.username, home.homeDirectory, home.uid, home.file, home.packages, assertions,
# systemd.user.services as Home Manager declares it: an attrset of unit sections).
# Arguments: lib (nixpkgs' lib), config (a module: the configuration under test).
# Result: { assertions (messages of the failed ones), manifest (the JSON text the service reads),
#   service (systemd.user.services.agenixd), placeholder, secrets }.
{ lib, config }:
let
  inherit (lib) mkOption types;
  fakePackage = import ./fake-package.nix;
  writeText = name: text: "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" text)}-${name}";
  standIns = {
    options = {
      home.username = mkOption { type = types.str; };
      home.homeDirectory = mkOption { type = types.str; };
      home.uid = mkOption { type = types.nullOr types.ints.unsigned; default = null; };
      home.file = mkOption {
        type = types.attrsOf (types.submodule ({ name, ... }: {
          options.target = mkOption { type = types.str; default = name; };
          options.enable = mkOption { type = types.bool; default = true; };
          options.text = mkOption { type = types.nullOr types.lines; default = null; };
        }));
        default = { };
      };
      home.packages = mkOption { type = types.listOf types.package; default = [ ]; };
      assertions = mkOption { type = types.listOf types.attrs; default = [ ]; };
      systemd.user.services = mkOption { type = types.attrsOf (types.attrsOf (types.attrsOf types.anything)); default = { }; };
    };
    config._module.args.pkgs = {
      agenixd = fakePackage "agenixd";
      systemd = fakePackage "systemd";
      stdenv.hostPlatform.isLinux = true;
      writeText = name: text: builtins.seq (builtins.toFile "probe" text) (writeText name text);
    };
  };
  eval = lib.evalModules { modules = [ standIns ../home-manager.nix config ]; };
  c = eval.config;
in
{
  assertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  service = c.systemd.user.services.agenixd or null;
  manifest = builtins.fromJSON c.age.manifestJSON;
  placeholder = c.age.placeholder;
  secrets = lib.mapAttrs (_: s: { inherit (s) path mode symlink; }) c.age.secrets;
  secretsDir = c.age.secretsDir;
  identityPaths = c.age.identityPaths;
}
