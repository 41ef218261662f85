# What a scenario's machine runs, from the module's own pure functions (../nix/manifest.nix and
# ../nix/unit.nix), so the harness boots exactly the manifest and units the NixOS module would.
# Evaluated with `nix-instantiate --store dummy:// --eval --strict --json`.
#
# Argument `json`: the scenario's machine, as the harness resolved it:
#   { mount, systemctl, path, userManagement, identityPaths,
#     users: { <name>: { group, hashedPasswordSecret? } },
#     configurations: { <name>: { agenixd, secrets: { <attr>: { file, name?, path?, mode?, owner?, group?, symlink? } } } } }
#   `file` is the path the ciphertext has inside the machine (a /nix/store path); `mount` is
#   mount(8), `systemctl` systemctl (both by absolute path, as the module gives them), `path` the directory standing in for NixOS's default PATH of services.
# Result: { <configuration>: { manifestPath, manifest, services, unitFiles } }.
#
# Secrets get the defaults of the module's options (nix/module.nix), which the pure functions
# expect filled in: the harness has no nixpkgs lib to evaluate the module itself.
{ json }:
let
  machine = builtins.fromJSON json;
  secretsDir = "/run/agenix";
  secretsMountPoint = "/run/agenix.d";
  renderUnitFile = import ../nix/unit-file.nix;

  withDefaults =
    attr: s:
    let
      name = s.name or attr;
      owner = s.owner or "0";
    in
    {
      inherit name owner;
      file = s.file;
      path = s.path or "${secretsDir}/${name}";
      mode = s.mode or "0400";
      group = s.group or (machine.users.${owner}.group or "0");
      symlink = s.symlink or true;
    };

  configuration =
    cfg:
    let
      secrets = builtins.mapAttrs withDefaults cfg.secrets;
      # users.users.<name>.hashedPasswordFile = config.age.secrets.<secret>.path
      passwordFilePaths = map (u: secrets.${u.hashedPasswordSecret}.path) (
        builtins.filter (u: u ? hashedPasswordSecret) (builtins.attrValues machine.users)
      );
      manifest = import ../nix/manifest.nix {
        inherit secrets secretsDir secretsMountPoint passwordFilePaths;
        inherit (machine) identityPaths;
        keepGenerations = 1;
      };
      # Content-addressed like pkgs.writeText would make it, so each configuration has its own.
      manifestPath = "/nix/store/${
        builtins.substring 0 32 (builtins.hashString "sha256" (builtins.toJSON manifest))
      }-agenixd-manifest.json";
      run = import ../nix/unit.nix {
        inherit (machine) mount systemctl identityPaths userManagement;
        inherit (cfg) agenixd;
        manifest = manifestPath;
        usersPhase = builtins.any (s: s.neededForUsers) manifest.secrets;
      };
      # The harness runs no activation script, as under nixos-init: a configuration that needs one
      # (password secrets with perl activation) cannot be booted here.
      checked =
        if run.needsActivationScripts then
          throw "agenixd harness: this configuration needs an activation script, which the harness (like nixos-init) never runs"
        else
          run;
      # NixOS gives every service its default PATH (coreutils, findutils, grep, sed, systemd).
      withNixosPath = s: s // { environment = { PATH = machine.path; } // (s.environment or { }); };
    in
    {
      inherit manifest manifestPath;
      unitFiles = builtins.listToAttrs (
        map (name: {
          name = "${name}.service";
          value = renderUnitFile (withNixosPath checked.services.${name});
        }) (builtins.attrNames checked.services)
      );
      services = builtins.mapAttrs (_: s: {
        wantedBy = s.wantedBy or [ ];
        requiredBy = s.requiredBy or [ ];
        aliases = s.aliases or [ ];
      }) run.services;
    };
in
builtins.mapAttrs (_: configuration) machine.configurations
