# NixOS module: agenix's `age.*` options, installed by agenixd as a systemd service.
# Declares the options and wires them to the pure functions next to it:
#   ./manifest.nix  option values -> the manifest agenixd reads
#   ./checks.nix    option values -> configuration problems (assertions)
#   ./unit.nix      executable + manifest -> systemd services and activation snippets
# and defines the one activation snippet that is opt-in (age.dryActivate) itself.
{
  config,
  options,
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

  users = config.users.users;

  # Every users.users.<name>.hashedPasswordFile that is set (passwordFile on older nixpkgs; the
  # `or` never reads the renamed option when the new one exists, so no rename warning).
  passwordFilePaths = lib.filter (p: p != null) (
    lib.mapAttrsToList (_: user: user.hashedPasswordFile or (user.passwordFile or null)) users
  );

  userManagement =
    if config.services.userborn.enable or false then
      "userborn"
    else if config.systemd.sysusers.enable or false then
      "sysusers"
    else
      "perl";

  optionValues = {
    inherit (cfg)
      secrets
      templates
      identityPaths
      secretsDir
      secretsMountPoint
      keepGenerations
      ;
  };

  manifest =
    import ./manifest.nix (
      optionValues
      // {
        inherit passwordFilePaths;
        credstoreEncrypted = cfg.credstore.encrypted;
        inherit (cfg.credstore) encryptWith;
        # A template's `content` (placeholders, never a secret) becomes a file in the store.
        inherit (pkgs) writeText;
      }
    )
    # ./plugins.nix: where agenixd looks up age-plugin-<name>.
    // lib.optionalAttrs (cfg.plugins != [ ]) { pluginDirs = map (p: "${lib.getBin p}/bin") cfg.plugins; }
    # pcscd's socket, as pcsc-lite's pcscd.socket listens on it (ListenStream=/run/pcscd/pcscd.comm).
    // lib.optionalAttrs (cfg.pcscdPlugins != [ ]) {
      pluginSockets = map (plugin: {
        inherit plugin;
        socket = "/run/pcscd/pcscd.comm";
        unit = "pcscd.socket";
      }) cfg.pcscdPlugins;
    };

  # The text that stands for a secret in a template, from its attribute name: the formula of
  # docs/manifest.md, which ./manifest.nix writes into each secret's `placeholder`.
  placeholderOf = attr: "<agenixd:${builtins.hashString "sha256" attr}:placeholder>";

  manifestFile = pkgs.writeText "agenixd-manifest.json" (builtins.toJSON cfg.manifest);

  # Decided from the options rather than from the manifest, which throws on a bad configuration:
  # that way the assertions, not the manifest, report the problems.
  usersPhase = lib.any (secret: lib.elem (toString secret.path) (map toString passwordFilePaths)) (
    lib.attrValues cfg.secrets
  );

  agenixd = lib.getExe' cfg.package "agenixd";

  # Paths agenixd writes outside secretsDir, by the option that sets each.
  outsidePaths =
    let
      outside = p: !lib.hasPrefix "${toString cfg.secretsDir}/" (toString p);
      of = kind: items: lib.mapAttrs' (n: v: lib.nameValuePair "age.${kind}.\"${n}\".path" (toString v.path)) (lib.filterAttrs (_: v: outside v.path) items);
    in
    of "secrets" cfg.secrets // of "templates" cfg.templates;

  bootOrder = import ./boot-order.nix {
    fileSystems = config.fileSystems or { };
    inherit (cfg) identityPaths;
    secretPaths = outsidePaths;
    inherit usersPhase userManagement;
  };

  run = import ./unit.nix {
    inherit agenixd;
    inherit (bootOrder) early;
    secretPaths = lib.attrValues outsidePaths;
    manifest = "${manifestFile}";
    inherit (cfg) identityPaths;
    inherit usersPhase userManagement;
    inherit (cfg) plugins;
    deferUntil = lib.optional (cfg.pcscdPlugins != [ ]) "pcscd.socket";
    deferredMarker = "${toString cfg.secretsMountPoint}/.deferred";
    inherit consumerUnits earlyConsumers;
    # age.credstore.encrypted: agenixd runs systemd-creds encrypt (and may need the TPM).
    sealCredentialsWith = if sealsCredentials then cfg.credstore.encryptWith else null;
    # age-plugin-tpm talks to the kernel's TPM resource manager (docs/plugins.md).
    pluginDevices = lib.optional (lib.any (p: lib.hasPrefix "age-plugin-tpm" (lib.getName p)) cfg.plugins) "/dev/tpmrm0 rw";
    # systemctl by absolute path, which restarts and reloads the units of changed secrets
    # (restartUnits/reloadUnits).
    inherit systemctl;
  };

  systemctl = "${config.systemd.package}/bin/systemctl";

  # The units restarted or reloaded for a secret or template, and those of them without default
  # dependencies (./unit.nix orders agenixd-deferred.service before the others).
  consumerUnits = lib.concatMap (x: x.restartUnits ++ x.reloadUnits) (lib.attrValues cfg.secrets ++ lib.attrValues cfg.templates);
  earlyConsumers = lib.filter (
    unit: (config.systemd.services.${lib.removeSuffix ".service" unit}.unitConfig.DefaultDependencies or true) == false
  ) consumerUnits;
  anyCredential = lib.any (s: s.credential) (lib.attrValues cfg.secrets);
  sealsCredentials = cfg.credstore.encrypted && anyCredential;

  # A snippet that supports dry activation, doing nothing on a real one (./dry-activate.nix).
  dryActivationSnippet = {
    supportsDryActivation = true;
    deps = [ ];
    text = import ./dry-activate.nix {
      inherit agenixd systemctl;
      manifest = "${manifestFile}";
    };
  };

  # agenix's home-manager module has an `age.package` too, meaning the age binary; given that here,
  # the unit would run a bin/agenixd that does not exist. Decided without building the package:
  # its main program, or its name when it declares none.
  packageProgram = cfg.package.meta.mainProgram or (lib.getName cfg.package);
  packageIsAgenixd = packageProgram == "agenixd";

  # mode, owner and group: the same for a secret and a rendered template.
  ownershipOptions =
    {
      config,
      what,
      ownerExample,
    }:
    {
      mode = mkOption {
        type = types.str;
        default = "0400";
        example = "0440";
        description = ''
          Permissions of ${what}, in a format understood by chmod: octal (`"0400"`, `"440"`) or
          symbolic (`"u=rw,g=r"`), applied as agenix does (`chmod` on a file created 0400).
        '';
      };
      owner = mkOption {
        type = types.str;
        default = "0";
        example = ownerExample;
        description = ''
          User owning ${what}: a name or a numeric id.
        '';
      };
      group = mkOption {
        type = types.str;
        default = users.${config.owner}.group or "0";
        defaultText = literalExpression ''config.users.users.''${owner}.group or "0"'';
        example = "keys";
        description = ''
          Group owning ${what}: a name or a numeric id. Defaults to the primary group of `owner`
          when `owner` is a user declared in {option}`users.users`.
        '';
      };
    };

  # restartUnits and reloadUnits: the same for a secret and a rendered template.
  unitOptions =
    { what, restartExample }:
    {
      restartUnits = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ restartExample ];
        description = ''
          Units restarted (`systemctl try-restart`) after a switch that added, removed or changed
          ${what}: its content, owner, group or mode. Each unit is restarted once, after every
          secret is in place, and only if it is running. Nothing is restarted at boot, nor when it
          could not be installed and kept its previous value. Works like sops-nix's option of the
          same name.
        '';
      };
      reloadUnits = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "nginx.service" ];
        description = ''
          Units reloaded (`systemctl try-reload-or-restart`: restarted when they cannot reload)
          when ${what} changes, under the same rules as `restartUnits`. A unit that is also
          restarted is only restarted. Works like sops-nix's option of the same name.
        '';
      };
    };

  secretType = types.submodule (
    { config, name, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          defaultText = literalExpression "<name>";
          example = "db/password";
          description = ''
            Name of the file below {option}`age.secretsDir` (and below each generation in
            {option}`age.secretsMountPoint`). A relative path; subdirectories are created, `..` is
            refused.
          '';
        };
        file = mkOption {
          type = types.path;
          example = literalExpression "./secrets/db-password.age";
          description = ''
            The age-encrypted file the secret is decrypted from. A path value is copied into the
            Nix store (it is ciphertext); a string is read where it is at activation.
          '';
        };
        path = mkOption {
          type = types.str;
          default = "${cfg.secretsDir}/${config.name}";
          defaultText = literalExpression ''"''${config.age.secretsDir}/''${name}"'';
          example = "/var/lib/postgresql/password";
          description = ''
            Path where the decrypted secret is installed. Outside {option}`age.secretsDir`,
            it is a symlink into the current generation, or a copy when `symlink` is false.
          '';
        };
      }
      // ownershipOptions {
        inherit config;
        what = "the decrypted secret";
        ownerExample = "postgres";
      }
      // {
        symlink = lib.mkEnableOption "symlinking secrets to their destination" // {
          default = true;
          example = false;
          description = ''
            Whether `path` is a symlink into the current generation (true) or a copy of the
            secret (false). A copy needs a `path` outside {option}`age.secretsDir`, which is
            replaced at each activation (agenix #291).
          '';
        };
      }
      // unitOptions {
        what = "this secret";
        restartExample = "postgresql.service";
      }
      // {
        trim = mkOption {
          type = types.bool;
          default = false;
          example = true;
          description = ''
            Whether one trailing newline (`\n` or `\r\n`) of the secret is dropped where it is
            substituted into a template ({option}`age.templates`), so that a value encrypted
            with `echo` or an editor's final newline fits inside a line such as
            `token = "…"`. The secret's own file keeps every byte either way.
          '';
        };
        credential = mkOption {
          type = types.bool;
          default = cfg.credstore.enable;
          defaultText = literalExpression "config.age.credstore.enable";
          example = true;
          description = ''
            Whether the secret is also published as `/run/credstore/<name>` (root, 0400, on the
            ramfs), where systemd's `LoadCredential=<name>` finds it without a path, for example
            in a `DynamicUser=` service. A `/` in `name` becomes `_` there (`db/password` is
            the credential `db_password`); the name must then be a systemd credential name: 1 to
            255 printable ASCII characters without `:`.
          '';
        };
      };
    }
  );

  templateType = types.submodule (
    { config, name, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          defaultText = literalExpression "<name>";
          example = "tabby/config.toml";
          description = ''
            Name of the rendered file below `''${config.age.secretsDir}/rendered` (in each
            generation, `rendered/<name>`). A relative path; subdirectories are created, `..` is
            refused.
          '';
        };
        content = mkOption {
          type = types.nullOr types.lines;
          default = null;
          example = literalExpression ''
            '''
              [server]
              endpoint = "https://tabby.example.org"
              token = "''${config.age.placeholder.tabby-token}"
            '''
          '';
          description = ''
            The template's text, with `''${config.age.placeholder.<secret>}` wherever a secret's
            value goes. It is written to the Nix store with `pkgs.writeText`, so it must hold
            placeholders, never a secret. Kept byte for byte, its final newline included. Set
            either this or `file`.
          '';
        };
        file = mkOption {
          type = types.nullOr types.path;
          default = null;
          example = literalExpression "./wireguard/wg0.conf";
          description = ''
            A file holding the template's text, with placeholders substituted like those of
            `content` (write them into the file as the strings of {option}`age.placeholder`, or
            build it with `pkgs.formats` or `pkgs.substitute` from those strings). A path value is
            copied into the store and checked for placeholders of undeclared secrets at
            evaluation; a derivation is used as it is. A string outside the store is refused
            unless `fileOutsideStore` is set. Set either this or `content`.
          '';
        };
        path = mkOption {
          type = types.str;
          default = "${cfg.secretsDir}/rendered/${config.name}";
          defaultText = literalExpression ''"''${config.age.secretsDir}/rendered/''${name}"'';
          example = "/etc/tabby-agent/config.toml";
          description = ''
            Path where the rendered file is wanted. Outside {option}`age.secretsDir`, it is a
            symlink into the current generation, or a copy when `symlink` is false.
          '';
        };
      }
      // ownershipOptions {
        inherit config;
        what = "the rendered file";
        ownerExample = "tabby";
      }
      // {
        symlink = mkOption {
          type = types.bool;
          default = true;
          example = false;
          description = ''
            Whether `path` is a symlink into the current generation (true) or a copy of the
            rendered file (false). A copy needs a `path` outside {option}`age.secretsDir`.
          '';
        };
      }
      // unitOptions {
        what = "the rendered file (the template's text or a secret in it)";
        restartExample = "tabby-agent.service";
      };
    }
  );
in
{
  imports = [
    ./plugins.nix
    (lib.mkRenamedOptionModule [ "age" "sshKeyPaths" ] [ "age" "identityPaths" ])
    ./template-access.nix
    ./recipient-check.nix
  ];

  options.age = {
    package = mkOption {
      type = types.package;
      default = pkgs.agenixd or (pkgs.callPackage ./package.nix { });
      defaultText = literalExpression "pkgs.agenixd or (pkgs.callPackage ./nix/package.nix { })";
      example = literalExpression "agenixd.packages.\${pkgs.system}.default";
      description = ''
        The agenixd package that decrypts and installs the secrets: it must provide `bin/agenixd`
        (its `meta.mainProgram`, or its name when it sets none, is `agenixd`). Unlike
        `age.package` in agenix's home-manager module, this is not the age binary: agenixd runs
        no age executable, and a package such as `pkgs.age` or `pkgs.rage` is refused at
        evaluation.
      '';
    };

    ageBin = mkOption {
      type = types.str;
      default = "${pkgs.age}/bin/age";
      defaultText = literalExpression ''"''${pkgs.age}/bin/age"'';
      example = literalExpression ''"''${pkgs.rage}/bin/rage"'';
      description = ''
        Ignored: agenixd decrypts in-process and runs no age executable. Accepted so that
        configurations written for agenix evaluate unchanged; setting it gives a warning.
      '';
    };

    secrets = mkOption {
      type = types.attrsOf secretType;
      default = { };
      example = literalExpression ''
        {
          "db/password" = {
            file = ./secrets/db-password.age;
            owner = "postgres";
          };
        }
      '';
      description = ''
        Secrets to decrypt, by name. Each is decrypted with {option}`age.identityPaths` at boot and at
        every switch, into a new generation below {option}`age.secretsMountPoint`.
      '';
    };

    templates = mkOption {
      type = types.attrsOf templateType;
      default = { };
      example = literalExpression ''
        {
          "tabby/config.toml" = {
            content = '''
              [server]
              endpoint = "https://tabby.example.org"
              token = "''${config.age.placeholder.tabby-token}"
            ''';
            owner = "tabby";
            restartUnits = [ "tabby-agent.service" ];
          };
        }
      '';
      description = ''
        Files with secrets inside, by name: configuration files whose text is in the Nix store
        with {option}`age.placeholder` strings where the secrets go, rendered at every activation
        into the generation (`''${config.age.secretsDir}/rendered/<name>`, on the ramfs) with each
        placeholder replaced by its secret's bytes.
      '';
    };

    placeholder = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
      default = lib.mapAttrs (attr: _: placeholderOf attr) cfg.secrets;
      defaultText = literalExpression ''
        lib.mapAttrs (name: _: "<agenixd:''${builtins.hashString "sha256" name}:placeholder>") config.age.secrets
      '';
      example = {
        tabby-token = "<agenixd:f77f86622e1bfd7275398ba953251d3e0c4764decfe726a173abc4d466d43519:placeholder>";
      };
      description = ''
        For each secret of {option}`age.secrets`, by the same attribute name, the string that
        stands for its value in {option}`age.templates`. Read-only. The string holds no secret:
        it lands in the store, and agenixd replaces it with the secret's bytes when it renders a
        template. A name that is not a declared secret fails the evaluation
        (`attribute '<name>' missing`).
      '';
    };

    credstore.enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether every secret is also published as a systemd credential, `/run/credstore/<name>`
        (the default of {option}`age.secrets.<name>.credential`), so that a unit's
        `LoadCredential=<name>` reads it without a path, `DynamicUser=` services included.
      '';
    };

    credstore.encrypted = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether credential secrets ({option}`age.secrets.<name>.credential`) are re-sealed at
        each activation with `systemd-creds encrypt` (the key {option}`age.credstore.encryptWith`)
        and published as `/run/credstore.encrypted/<name>`, for a unit's
        `LoadCredentialEncrypted=<name>`, instead of in plaintext. The plaintext then exists
        only in each such unit's own credentials directory: such a secret has no file in
        {option}`age.secretsDir` and no entry in `/run/credstore`, so its `path` must be left at
        its default. A secret whose plaintext did not change keeps its sealed blob (no
        `systemd-creds` run); a changed one is sealed again and its `restartUnits` restarted.
      '';
    };

    credstore.encryptWith = mkOption {
      type = types.enum [
        "auto"
        "host"
        "tpm2"
        "host+tpm2"
      ];
      default = "auto";
      example = "host+tpm2";
      description = ''
        The key `systemd-creds encrypt --with-key=` seals encrypted credentials with. `auto`
        is systemd's choice: the host key `/var/lib/systemd/credential.secret` (made on first
        use) unless `/var/lib/systemd` is on a tmpfs, combined with the TPM when one is there and
        the machine is not a container; with neither it fails. `host` is the file alone,
        `tpm2` the TPM alone, `host+tpm2` both.
      '';
    };

    secretsDir = mkOption {
      type = types.path;
      default = "/run/agenix";
      example = "/run/secrets";
      description = ''
        Symlink to the current generation; secrets are found below it by name.
      '';
    };

    secretsMountPoint = mkOption {
      type =
        types.addCheck types.str (
          s:
          (builtins.match "[ \t\n]*" s) == null # non-empty
          && (builtins.match ".+/" s) == null # without trailing slash
        )
        // {
          description = "${types.str.description} (with check: non-empty without trailing slash)";
        };
      default = "/run/agenix.d";
      example = "/run/secrets.d";
      description = ''
        Where the ramfs holding the generations is mounted; each generation is a numbered
        directory below it.
      '';
    };

    identityPaths = mkOption {
      type = types.listOf types.path;
      default =
        if config.services.openssh.enable or false then
          map (e: e.path) (lib.filter (e: e.type == "rsa" || e.type == "ed25519") config.services.openssh.hostKeys)
        else
          [ ];
      defaultText = literalExpression ''
        if config.services.openssh.enable then
          map (e: e.path) (lib.filter (e: e.type == "rsa" || e.type == "ed25519") config.services.openssh.hostKeys)
        else
          [ ]
      '';
      example = [
        "/etc/ssh/ssh_host_ed25519_key"
        "/persist/agenix/age.key"
      ];
      description = ''
        Private keys tried to decrypt the secrets: OpenSSH ed25519 and RSA keys, age X25519 and
        ML-KEM-768+X25519 identity files. Give them as strings: a path value is not copied into
        the store, but a string says what is meant. The service waits for the mounts holding them.
      '';
    };

    manifest = mkOption {
      type = types.attrs;
      internal = true;
      readOnly = true;
      default = manifest;
      defaultText = literalExpression "import ./manifest.nix { ... }";
      description = ''
        The manifest agenixd reads (docs/manifest.md), as written to the store. For inspection.
      '';
    };

    dryActivate = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether `nixos-rebuild dry-activate` shows which secrets a switch would add, modify or
        remove and which units it would restart or reload (`agenixd activate --dry-run`, which
        writes nothing). A dry activation starts no unit and runs only activation script snippets
        that support it, so this adds one: `system.activationScripts.agenixdDryActivate`, which
        does nothing unless `NIXOS_ACTION` is `dry-activate`. The running units it would restart
        or reload also go into switch-to-configuration's dry-activation lists, so that its own
        "would restart/reload/start the following units" names them. Off by default because NixOS is
        deprecating activation scripts (nixpkgs #475305) and warns about every one with a body.
      '';
    };

    keepGenerations = mkOption {
      type = types.ints.positive;
      default = 1;
      example = 3;
      description = ''
        How many generations to keep below {option}`age.secretsMountPoint`, the current one
        included: 1 removes the previous generation once the new one is in place, as agenix does.
      '';
    };
  };

  config = lib.mkMerge [
    {
      # Whether or not there are secrets: a package set for agenix's meaning of the option is a
      # mistake either way. The default (this repository's package) is not inspected.
      assertions = lib.optional (options.age.package.highestPrio < (lib.mkOptionDefault null).priority) {
        assertion = packageIsAgenixd;
        message = "age.package is ${lib.getName cfg.package} (main program \"${packageProgram}\"), not agenixd. In this module age.package is the agenixd that installs the secrets, not the age binary of agenix's home-manager module (agenixd decrypts in-process and runs no age executable). Remove the setting to use agenixd from this flake, or set it to a package that provides bin/agenixd; one named otherwise needs meta.mainProgram = \"agenixd\".";
      };
    }
    (mkIf (cfg.secrets != { } || cfg.templates != { }) {
      assertions =
        map (message: {
          assertion = false;
          inherit message;
        }) (import ./checks.nix optionValues)
        # Users are created before templates are rendered (only secrets have the early phase).
        ++ lib.mapAttrsToList (attr: template: {
          assertion = !(lib.elem (toString template.path) (map toString passwordFilePaths));
          message = "age.templates.\"${attr}\".path (${template.path}) is a user's hashedPasswordFile, but templates are rendered after users are created; use a secret's path for hashedPasswordFile.";
        }) cfg.templates
        # A unit that loads the credstore as a directory would silently get none of its symlinks.
        ++ map (message: {
          assertion = false;
          inherit message;
        }) (import ./credstore.nix {
          credstore = if anyCredential && !sealsCredentials then "/run/credstore" else null;
          encryptedCredstore = if sealsCredentials then "/run/credstore.encrypted" else null;
          credentials = map (s: builtins.replaceStrings [ "/" ] [ "_" ] s.name) (lib.filter (s: s.credential) (lib.attrValues cfg.secrets));
          loadCredentials = lib.mapAttrs (_: s: s.serviceConfig.LoadCredential or [ ]) config.systemd.services;
          loadCredentialsEncrypted = lib.mapAttrs (_: s: s.serviceConfig.LoadCredentialEncrypted or [ ]) config.systemd.services;
        })
        # An encrypted credential has no file: a path elsewhere, or a user's password file, would be empty.
        ++ lib.concatLists (
          lib.mapAttrsToList (
            attr: secret:
            lib.optionals (sealsCredentials && secret.credential) [
              {
                assertion = toString secret.path == "${toString cfg.secretsDir}/${secret.name}";
                message = "age.secrets.\"${attr}\".path is ${toString secret.path}, but with age.credstore.encrypted the credential ${attr} has no file: it is only sealed in /run/credstore.encrypted for LoadCredentialEncrypted=. Leave path at its default, or set credential = false to install it as a file.";
              }
              {
                assertion = !(lib.elem (toString secret.path) (map toString passwordFilePaths));
                message = "age.secrets.\"${attr}\" is a user's hashedPasswordFile, but with age.credstore.encrypted the credential ${attr} has no file; set credential = false on it.";
              }
            ]
          ) cfg.secrets
        );

      warnings = lib.optional (
        options.age.ageBin.highestPrio < (lib.mkOptionDefault null).priority
      ) "age.ageBin is set, but agenixd does not run an age executable; the option is ignored."
      ++ bootOrder.warnings
      # agenix users' own snippets ordered after `agenix` read /run/agenix at activation time;
      # under agenixd the anchor is empty and the secrets arrive with agenixd.service, later.
      ++ lib.mapAttrsToList (
        name: _:
        "system.activationScripts.${name} has deps = [ \"agenix\" ], but agenixd installs secrets in agenixd.service, after activation: the snippet runs before any secret exists. Move its work into a systemd service with after = [ \"agenixd.service\" ] and wants = [ \"agenixd.service\" ] (docs/boot.md)."
      ) (
        lib.filterAttrs (
          name: script: name != "agenix" && lib.isAttrs script && lib.elem "agenix" (script.deps or [ ])
        ) config.system.activationScripts
      );

      systemd.services = run.services;

      # age-plugin-yubikey and age-plugin-openpgp-card reach the card through pcscd.
      services.pcscd.enable = mkIf (cfg.pcscdPlugins != [ ]) (lib.mkDefault true);

      system.activationScripts =
        run.activationScripts
        // lib.optionalAttrs cfg.dryActivate { agenixdDryActivate = dryActivationSnippet; };
    })
  ];
}
