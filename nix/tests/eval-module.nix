# Evaluates ../module.nix with nixpkgs' lib.evalModules and minimal stand-ins for the NixOS
# options it reads or sets, so CI can check the whole module without a nixpkgs tree.
#
# Arguments:
#   lib     nixpkgs' lib (import <nixpkgs.lib>/lib)
#   config  a NixOS-style module: the configuration under test; its `pkgs` argument holds the
#           stand-in packages below (age, agenixd, writeText: its store path is
#           /nix/store/<the first 32 hex digits of the text's sha256>-<name>); systemd.package is
#           a stand-in systemd
#   module  the module under test (default ../module.nix): a copy next to another unit.nix
# Result: what the tests look at: { assertions (messages of the failed ones), warnings,
#   manifest, services, activationScripts, identityPaths, secrets, templates, placeholder,
#   credstore, dryActivate, checks (system.checks: name, buildCommand, secretsJson, recipients),
#   optionDocs (the documentation of every age.* option: name, visible,
#   readOnly, description, example, default) }.
{
  lib,
  config,
  module ? ../module.nix,
}:
let
  inherit (lib) mkOption types;

  anything = mkOption {
    type = types.anything;
    default = { };
  };

  # What the module may read of a package without building it: name, pname, meta, outPath.
  fakePackage = pname: version: {
    type = "derivation";
    name = "${pname}-${version}";
    inherit pname version;
    meta.mainProgram = pname;
    outPath = "/nix/store/00000000000000000000000000000000-${pname}-${version}";
  };

  # Only what the module touches, with NixOS's types where they matter to it.
  standIns =
    { ... }:
    {
      options = {
        assertions = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        warnings = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        users.users = mkOption {
          default = { };
          type = types.attrsOf (
            types.submodule (
              { name, ... }:
              {
                options = {
                  group = mkOption {
                    type = types.str;
                    default = "";
                  };
                  hashedPasswordFile = mkOption {
                    type = types.nullOr types.str;
                    default = null;
                  };
                  isNormalUser = mkOption {
                    type = types.bool;
                    default = false;
                  };
                };
              }
            )
          );
        };
        services.openssh = {
          enable = mkOption {
            type = types.bool;
            default = false;
          };
          hostKeys = mkOption {
            type = types.listOf types.attrs;
            default = [
              {
                type = "rsa";
                bits = 4096;
                path = "/etc/ssh/ssh_host_rsa_key";
              }
              {
                type = "ed25519";
                path = "/etc/ssh/ssh_host_ed25519_key";
              }
            ];
          };
        };
        services.userborn.enable = mkOption {
          type = types.bool;
          default = false;
        };
        services.pcscd.enable = mkOption {
          type = types.bool;
          default = false;
        };
        systemd.sysusers.enable = mkOption {
          type = types.bool;
          default = false;
        };
        systemd.package = mkOption {
          type = types.package;
          default = fakePackage "systemd" "258";
        };
        systemd.services = mkOption {
          type = types.attrsOf types.attrs;
          default = { };
        };
        system.checks = mkOption {
          type = types.listOf types.attrs;
          default = [ ];
        };
        # Only what nix/boot-order.nix reads of NixOS's fileSystems.
        fileSystems = mkOption {
          type = types.attrsOf types.attrs;
          default = { };
        };
        system.activationScripts = mkOption {
          type = types.attrsOf (
            types.submodule {
              options = {
                text = mkOption {
                  type = types.lines;
                  default = "";
                };
                deps = mkOption {
                  type = types.listOf types.str;
                  default = [ ];
                };
                supportsDryActivation = mkOption {
                  type = types.bool;
                  default = false;
                };
              };
            }
          );
          default = { };
        };
      };
    };

  pkgs = {
    age = fakePackage "age" "1.2.1";
    agenixd = fakePackage "agenixd" "0.1.0";
    # Content-addressed like the real one: the store path changes with the text, so a test can
    # tell which text was written (the first 32 hex digits of its sha256) without a store.
    # What the test reads of a build: its name, script and attributes (nothing is built).
    runCommand = name: env: buildCommand: env // {
      type = "derivation";
      inherit name buildCommand;
      outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" buildCommand)}-${name}";
    };
    writeText = name: text: {
      type = "derivation";
      inherit name text;
      outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" text)}-${name}";
    };
  };

  evaluated = lib.evalModules {
    modules = [
      standIns
      module
      config
      { _module.args.pkgs = pkgs; }
    ];
  };

  cfg = evaluated.config;

  # The documentation of every age.* option, as the NixOS manual renders it (sub-options included).
  optionDocs = map (o: {
    inherit (o) name visible readOnly;
    description = o.description or null;
    example = o.example or null;
    default = o.default or null;
  }) (lib.optionAttrSetToDocList evaluated.options.age);
in
{
  assertions = map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);
  inherit (cfg) warnings;
  services = cfg.systemd.services;
  pcscd = cfg.services.pcscd.enable;
  activationScripts = cfg.system.activationScripts;
  checks = map (c: { inherit (c) name buildCommand secretsJson recipients; }) cfg.system.checks;
  inherit (cfg.age)
    identityPaths
    secrets
    templates
    placeholder
    credstore
    dryActivate
    ;
  manifest = cfg.age.manifest;
  inherit optionDocs;
}
