# Home Manager module: agenix's Home Manager `age.*` options (modules/age-home.nix), installed by
# agenixd as a service in the user's own systemd manager. The same activation as the NixOS
# module's system unit (`agenixd activate --user`, docs/home-manager.md): the manifest comes from
# ./manifest.nix and ./checks.nix, like the NixOS module's; only the service differs.
#
# What a user's secrets differ in: no owner or group (a user's secrets are the user's); no mount
# (they live below $XDG_RUNTIME_DIR, a tmpfs only the user can enter); paths start with
# `${XDG_RUNTIME_DIR}` (agenix's default) unless `age.uid` is set, which makes them absolute.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    literalExpression
    mkIf
    mkOption
    types
    ;

  cfg = config.age;

  # The literal agenix's module writes; agenixd --user expands a leading one from the environment
  # the user manager gives it (src/user-host.ts). With age.uid it is /run/user/<uid> itself.
  runtimeDir = if cfg.uid == null then "\${XDG_RUNTIME_DIR}" else "/run/user/${toString cfg.uid}";

  placeholderOf = attr: "<agenixd:${builtins.hashString "sha256" attr}:placeholder>";

  units = types.listOf types.str;
  unitOptions = kind: {
    restartUnits = mkOption {
      type = units;
      default = [ ];
      example = [ "tabby-agent.service" ];
      description = "User units (of the user's own manager) to restart, with `systemctl --user try-restart`, when this ${kind} changes. agenixd.service is ordered before them.";
    };
    reloadUnits = mkOption {
      type = units;
      default = [ ];
      description = "User units to reload (`systemctl --user try-reload-or-restart`) when this ${kind} changes.";
    };
  };

  secretType = types.submodule (
    { config, name, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          description = "Name of the file used in `age.secretsDir`.";
        };
        file = mkOption {
          type = types.path;
          description = "Age file the secret is loaded from.";
        };
        path = mkOption {
          type = types.str;
          default = "${cfg.secretsDir}/${config.name}";
          defaultText = literalExpression ''"''${config.age.secretsDir}/''${name}"'';
          description = ''
            Path where the decrypted secret is installed. By default it starts with the literal
            `''${XDG_RUNTIME_DIR}`, as in agenix (a program reading its own config file does not
            expand it: use `%t/agenix/<name>` in a unit file, or set `age.uid` to get
            `/run/user/<uid>/agenix/<name>`; docs/home-manager.md).
          '';
        };
        mode = mkOption {
          type = types.str;
          default = "0400";
          description = "Permissions mode of the decrypted secret in a format understood by chmod.";
        };
        symlink = lib.mkEnableOption "symlinking secrets to their destination" // {
          default = true;
        };
      }
      // unitOptions "secret";
    }
  );

  templateType = types.submodule (
    { config, name, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          description = "Name of the rendered file below `age.secretsDir`/rendered.";
        };
        content = mkOption {
          type = types.nullOr types.lines;
          default = null;
          example = literalExpression ''
            '''
              [server]
              token = "''${config.age.placeholder.tabby-token}"
            '''
          '';
          description = "The template's text, with `config.age.placeholder.<secret>` wherever a secret's value goes. Written to the Nix store: placeholders only, never a secret.";
        };
        file = mkOption {
          type = types.nullOr types.path;
          default = null;
          description = "A file holding the template's text, instead of `content`.";
        };
        path = mkOption {
          type = types.str;
          default = "${cfg.secretsDir}/rendered/${config.name}";
          defaultText = literalExpression ''"''${config.age.secretsDir}/rendered/''${name}"'';
          example = literalExpression ''"''${config.home.homeDirectory}/.tabby-client/agent/config.toml"'';
          description = "Where the rendered file is installed.";
        };
        mode = mkOption {
          type = types.str;
          default = "0400";
          description = "Permissions mode of the rendered file.";
        };
        symlink = mkOption {
          type = types.bool;
          default = true;
          description = "Link `path` to the rendered file in the generation; false writes a copy (needed for programs that refuse symlinks).";
        };
      }
      // unitOptions "template";
    }
  );

  manifestJSON = import ./home-manifest.nix {
    inherit (cfg)
      secrets
      templates
      identityPaths
      secretsDir
      secretsMountPoint
      keepGenerations
      ;
    user = config.home.username;
    inherit (pkgs) writeText;
  };
  manifestFile = pkgs.writeText "agenixd-home-manifest.json" manifestJSON;

  # Files Home Manager links into the home directory (home.file, and xdg.configFile and the
  # others, which it maps into home.file), by absolute path. home.file's target is relative to
  # the home directory unless it lies outside it.
  homeFileTargets = lib.listToAttrs (
    map (f: {
      name = if lib.hasPrefix "/" f.target then f.target else "${config.home.homeDirectory}/${f.target}";
      value = f;
    }) (lib.filter (f: f.enable) (lib.attrValues (config.home.file or { })))
  );
  managedTwice = lib.concatMap (
    { kind, items }:
    lib.concatMap (
      attr:
      let
        path = items.${attr}.path;
      in
      lib.optional (homeFileTargets ? ${path}) "age.${kind}.${attr}.path is ${path}, which Home Manager also links from home.file (\"${homeFileTargets.${path}.target}\"): the two would replace each other's file at every switch. Remove the home.file entry (its text is in the Nix store, world-readable) and keep the agenixd ${lib.removeSuffix "s" kind}."
    ) (lib.attrNames items)
  ) [
    { kind = "secrets"; items = cfg.secrets; }
    { kind = "templates"; items = cfg.templates; }
  ];

  triggered = lib.unique (lib.concatMap (x: x.restartUnits ++ x.reloadUnits) (lib.attrValues cfg.secrets ++ lib.attrValues cfg.templates));
in
{
  options.age = {
    package = mkOption {
      type = types.package;
      default = pkgs.agenixd or (pkgs.callPackage ./package.nix { });
      defaultText = literalExpression "pkgs.agenixd or (pkgs.callPackage ./nix/package.nix { })";
      description = "The agenixd that installs the secrets (unlike agenix's Home Manager module, not the age binary).";
    };
    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
      description = "Attrset of secrets.";
    };
    templates = mkOption {
      type = types.attrsOf templateType;
      default = { };
      description = "Files rendered from a text and secrets' placeholders, each installed with its final mode.";
    };
    placeholder = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
      default = lib.mapAttrs (attr: _: placeholderOf attr) cfg.secrets;
      defaultText = literalExpression "{ <secret> = \"<agenixd:…:placeholder>\"; }";
      description = "The text that stands for each secret in `age.templates.<name>.content`.";
    };
    identityPaths = mkOption {
      type = types.listOf types.path;
      default = [
        "${config.home.homeDirectory}/.ssh/id_ed25519"
        "${config.home.homeDirectory}/.ssh/id_rsa"
      ];
      defaultText = literalExpression ''
        [
          "''${config.home.homeDirectory}/.ssh/id_ed25519"
          "''${config.home.homeDirectory}/.ssh/id_rsa"
        ]
      '';
      description = "Path to SSH keys (or age identity files) to be used as identities in age decryption. A passphrase-protected key is skipped with a warning.";
    };
    uid = mkOption {
      type = types.nullOr types.ints.unsigned;
      # Home Manager's own home.uid (since 2025), which its NixOS and nix-darwin modules set from
      # users.users.<name>.uid; older Home Manager has no such option.
      default = config.home.uid or null;
      defaultText = literalExpression "config.home.uid or null";
      example = 1000;
      description = "The user's uid. When set, the default secretsDir and secretsMountPoint (and so every default `path`) are under the absolute /run/user/<uid> instead of the literal `\${XDG_RUNTIME_DIR}`, so programs reading their config files can open them. Defaults to Home Manager's `home.uid`, which its NixOS module sets from `users.users.<name>.uid`.";
    };
    secretsDir = mkOption {
      type = types.str;
      default = "${runtimeDir}/agenix";
      defaultText = literalExpression ''"''${XDG_RUNTIME_DIR}/agenix" (or "/run/user/''${toString config.age.uid}/agenix")'';
      description = "Folder where secrets are symlinked to.";
    };
    secretsMountPoint = mkOption {
      type = types.str;
      default = "${runtimeDir}/agenix.d";
      defaultText = literalExpression ''"''${XDG_RUNTIME_DIR}/agenix.d" (or "/run/user/''${toString config.age.uid}/agenix.d")'';
      description = "Where secrets are created before they are symlinked to `age.secretsDir`. Must be on a tmpfs of the user's own (no mount is made).";
    };
    manifestJSON = mkOption {
      type = types.str;
      internal = true;
      readOnly = true;
      default = manifestJSON;
      description = "The manifest agenixd.service reads (docs/manifest.md), for tests and debugging.";
    };
    keepGenerations = mkOption {
      type = types.ints.positive;
      default = 1;
      description = "How many generations besides the live one stay in secretsMountPoint.";
    };
  };

  config = mkIf (cfg.secrets != { } || cfg.templates != { }) {
    assertions = [
      {
        assertion = cfg.identityPaths != [ ];
        message = "age.identityPaths must be set.";
      }
      {
        assertion = pkgs.stdenv.hostPlatform.isLinux;
        message = "agenixd's Home Manager module needs a Linux systemd user manager (no launchd agent).";
      }
    ]
    ++ map (message: {
      assertion = false;
      inherit message;
    }) managedTwice;

    systemd.user.services.agenixd = import ./home-service.nix {
      agenixd = lib.getExe' cfg.package "agenixd";
      manifest = manifestFile;
      systemctl = "${pkgs.systemd}/bin/systemctl";
      inherit triggered;
    };

    home.packages = [ cfg.package ];
  };
}
