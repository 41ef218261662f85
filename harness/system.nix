# What a scenario's machine runs, from the module's own pure functions (../nix/manifest.nix and
# ../nix/unit.nix), so the harness boots exactly the manifest and units the NixOS module would.
# Evaluated with `nix-instantiate --store dummy:// --eval --strict --json`.
#
# Argument `json`: the scenario's machine, as the harness resolved it:
#   { mount, systemctl, path, userManagement, identityPaths,
#     users: { <name>: { group, hashedPasswordSecret? } },
#     configurations: { <name>: {
#       agenixd, credstore?, credstoreEncrypted?, dryActivate? (false by default), encryptWith?,
#       secrets: { <attr>: { file, name?, path?, mode?, owner?, group?, symlink?, restartUnits?,
#                            reloadUnits?, trim?, credential? } },
#       templates?: { <attr>: { content, name?, path?, mode?, owner?, group?, symlink?,
#                               restartUnits?, reloadUnits? } } } } }
#   `file` is the path the ciphertext has inside the machine (a /nix/store path); `mount` is
#   mount(8), `systemctl` systemctl (both by absolute path, as the module gives them), `path` the
#   directory standing in for NixOS's default PATH of services. A template's `content` names
#   secrets as `{{attr}}`, which becomes that secret's placeholder (config.age.placeholder.<attr>).
# Result: { <configuration>: { manifestPath, manifest, services, unitFiles, storeFiles,
#   dryActivate } }: `storeFiles` maps the store paths the manifest names for template texts to
#   those texts (the fixture writes them); `dryActivate` is the configuration's dry-activate
#   script (null without age.dryActivate).
#
# Secrets and templates get the defaults of the module's options (nix/module.nix), which the pure
# functions expect filled in: the harness has no nixpkgs lib to evaluate the module itself.
{ json }:
let
  machine = builtins.fromJSON json;
  secretsDir = "/run/agenix";
  secretsMountPoint = "/run/agenix.d";
  renderUnitFile = import ../nix/unit-file.nix;

  inherit (builtins)
    attrNames
    elemAt
    genList
    length
    listToAttrs
    ;

  # What secrets and templates share, with the module's defaults.
  fileDefaults = attr: s: rec {
    name = s.name or attr;
    owner = s.owner or "0";
    mode = s.mode or "0400";
    group = s.group or (machine.users.${owner}.group or "0");
    symlink = s.symlink or true;
    restartUnits = s.restartUnits or [ ];
    reloadUnits = s.reloadUnits or [ ];
  };

  secretWithDefaults =
    cfg: attr: s:
    let
      common = fileDefaults attr s;
    in
    common
    // {
      file = s.file;
      path = s.path or "${secretsDir}/${common.name}";
      trim = s.trim or false;
      # age.secrets.<n>.credential defaults to age.credstore.enable.
      credential = s.credential or (cfg.credstore or false);
    };

  withPlaceholders = import ./placeholders.nix;

  templateWithDefaults =
    placeholders: attr: t:
    let
      common = fileDefaults attr t;
    in
    common
    // {
      content = withPlaceholders placeholders attr t.content;
      file = null;
      path = t.path or "${secretsDir}/rendered/${common.name}";
    };

  # NixOS's toplevel `dry-activate` script holds the activation snippets that support a dry run;
  # with age.dryActivate, agenixd's is this one (nix/module.nix, dryActivationSnippet).
  dryActivateScript =
    agenixd: systemctl: manifestPath:
    "#!/bin/sh\n"
    + import ../nix/dry-activate.nix {
      inherit agenixd systemctl;
      manifest = manifestPath;
    };

  configuration =
    cfg:
    let
      secrets = builtins.mapAttrs (secretWithDefaults cfg) cfg.secrets;
      # users.users.<name>.hashedPasswordFile = config.age.secrets.<secret>.path
      passwordFilePaths = map (u: secrets.${u.hashedPasswordSecret}.path) (
        builtins.filter (u: u ? hashedPasswordSecret) (builtins.attrValues machine.users)
      );
      # age.credstore.encrypted and encryptWith, as nix/module.nix passes them.
      credstoreEncrypted = cfg.credstoreEncrypted or false;
      encryptWith = cfg.encryptWith or "auto";
      sealsCredentials = credstoreEncrypted && builtins.any (s: s.credential) (builtins.attrValues secrets);
      manifestArgs = {
        inherit secrets secretsDir secretsMountPoint passwordFilePaths credstoreEncrypted encryptWith;
        inherit (machine) identityPaths;
        keepGenerations = 1;
      };
      # The placeholders are manifest.nix's own (config.age.placeholder uses the same formula):
      # its secrets come in the order of their attribute names.
      secretEntries = (import ../nix/manifest.nix manifestArgs).secrets;
      secretAttrs = attrNames secrets;
      placeholders = listToAttrs (
        genList (i: {
          name = elemAt secretAttrs i;
          value = (elemAt secretEntries i).placeholder;
        }) (length secretAttrs)
      );
      templates = builtins.mapAttrs (templateWithDefaults placeholders) (cfg.templates or { });
      # Template texts go to the store with builtins.toFile (manifest.nix's default writeText),
      # which only computes the path under the dummy store: the fixture writes the files.
      plugins = cfg.plugins or [ ];
      # As nix/module.nix adds age.plugins' bin directories (nix/plugins.nix).
      manifest =
        import ../nix/manifest.nix (manifestArgs // { inherit templates; })
        // (if plugins == [ ] then { } else { pluginDirs = map (p: "${p}/bin") plugins; })
        # As nix/module.nix names pcscd's socket for age.pcscdPlugins.
        // (if pcscdPlugins == [ ] then { } else {
          pluginSockets = map (plugin: { inherit plugin; socket = "/run/pcscd/pcscd.comm"; unit = "pcscd.socket"; }) pcscdPlugins;
        });
      pcscdPlugins = cfg.pcscdPlugins or [ ];
      # As nix/module.nix passes them; the scenario's services have default dependencies unless
      # they say otherwise (machine.earlyServices).
      consumerUnits = builtins.concatMap (x: (x.restartUnits or [ ]) ++ (x.reloadUnits or [ ])) (builtins.attrValues secrets ++ builtins.attrValues (cfg.templates or { }));
      templateAttrs = attrNames templates;
      storeFiles = listToAttrs (
        genList (i: {
          # An attribute name cannot carry the store path's context.
          name = builtins.unsafeDiscardStringContext (elemAt manifest.templates i).file;
          value = templates.${elemAt templateAttrs i}.content;
        }) (length templateAttrs)
      );
      # Content-addressed like pkgs.writeText would make it, so each configuration has its own.
      manifestPath = "/nix/store/${
        builtins.substring 0 32 (builtins.hashString "sha256" (builtins.toJSON manifest))
      }-agenixd-manifest.json";
      run = import ../nix/unit.nix {
        inherit (machine) systemctl identityPaths userManagement;
        inherit (cfg) agenixd;
        inherit plugins consumerUnits;
        earlyConsumers = machine.earlyServices or [ ];
        deferUntil = if pcscdPlugins == [ ] then [ ] else [ "pcscd.socket" ];
        deferredMarker = "${secretsMountPoint}/.deferred";
        # The harness's identities are on its root: the early ordering NixOS gets (../nix/boot-order.nix).
        inherit ((import ../nix/boot-order.nix { fileSystems = { }; inherit (machine) identityPaths; })) early;
        manifest = manifestPath;
        usersPhase = builtins.any (s: s.neededForUsers) manifest.secrets;
        sealCredentialsWith = if sealsCredentials then encryptWith else null;
      };
      # The harness runs no activation script, as under nixos-init: a configuration that needs one
      # (password secrets with perl activation) cannot be booted here.
      checked =
        if run.needsActivationScripts then
          throw "agenixd harness: this configuration needs an activation script, which the harness (like nixos-init) never runs"
        else
          run;
      # NixOS gives every service its default PATH (coreutils, findutils, grep, sed, systemd).
      # A unit's `path` (age.plugins) comes first, as NixOS's makeBinPath puts it.
      withNixosPath =
        s:
        s
        // {
          environment = {
            PATH = builtins.concatStringsSep ":" (map (p: "${p}/bin") (s.path or [ ]) ++ [ machine.path ]);
          }
          // (s.environment or { });
        };
    in
    {
      inherit manifest manifestPath storeFiles;
      dryActivate = if cfg.dryActivate or false then dryActivateScript cfg.agenixd machine.systemctl manifestPath else null;
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
