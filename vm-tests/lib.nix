# Builds a NixOS VM test (pkgs.testers.runNixOSTest) from a scenario in ./scenarios/<name>.json,
# the same data the boot harness (../harness) runs under systemd-nspawn and QEMU. The Python
# testScript runs the scenario's steps with ./steps.py, the twin of ../harness/steps.ts.
#
# No activation script here: the host key is a file of environment.etc (in place before any unit
# under scripted activation, systemd initrd, nixos-init and the etc overlay alike).
{
  pkgs,
  agenixdModule,
  # For scenarios with a Home Manager user: { nixosModule (home-manager's), module (ours) }.
  homeManager ? null,
}:
let
  inherit (pkgs) lib;

  # A host key made at build time. Fine for a test, never for a real machine: it is in the store.
  mkHostKey =
    name:
    pkgs.runCommand "agenixd-test-key-${name}" { nativeBuildInputs = [ pkgs.openssh ]; } ''
      mkdir $out
      ssh-keygen -q -t ed25519 -N "" -C "${name}" -f $out/key
    '';
  hostKey = mkHostKey "host";
  # Secrets marked `undecryptable` are encrypted to this key, which no machine has.
  strangerKey = mkHostKey "stranger";
  # A Home Manager user's ~/.ssh/id_ed25519, the identity agenix's Home Manager module defaults to.
  userKey = mkHostKey "user";

  encryptTo =
    key: attr: def:
    pkgs.runCommand "${def.sourceName or attr}.age" { nativeBuildInputs = [ pkgs.age ]; } ''
      age -R ${if def.undecryptable or false then strangerKey else key}/key.pub \
        -o $out ${pkgs.writeText "plaintext" def.content}
    '';

  # scenario.plugin: test/helpers/age-plugin-test.ts run by Node 24, which strips its types, as
  # age-plugin-<name> (one package per mode), and an identity AGE-PLUGIN-<NAME>-1… wrapping an
  # X25519 key made at build time (in the store: a test's key, never a real one).
  pluginProgram = ../test/helpers/age-plugin-test.ts;
  pluginKey =
    name:
    pkgs.runCommand "agenixd-test-plugin-key-${name}"
      {
        nativeBuildInputs = [
          pkgs.age
          pkgs.nodejs_24
        ];
      }
      ''
        mkdir $out
        age-keygen -o key 2> /dev/null
        age-keygen -y key > $out/key.pub
        node --input-type=module -e "
          import { pluginIdentityFor } from '${pluginProgram}';
          import { readFileSync, writeFileSync } from 'node:fs';
          const key = readFileSync('key', 'utf8').split('\\n').find((l) => l.startsWith('AGE-SECRET-KEY-1'));
          writeFileSync(process.env.out + '/identity', pluginIdentityFor(key, '${name}') + '\\n');"
      '';
  pluginPackage =
    name: mode:
    pkgs.writeTextFile {
      name = "age-plugin-${name}-${builtins.replaceStrings [ "/" "=" ] [ "_" "_" ] mode}";
      destination = "/bin/age-plugin-${name}";
      executable = true;
      text = ''
        #!${pkgs.runtimeShell}
        exec ${pkgs.nodejs_24}/bin/node ${pluginProgram} ${mode} /run/age-plugin-starts "$@"
      '';
    };
  # scenario.luks: a LUKS2 image whose only key is the key secret's content (as harness/fixture.ts
  # makes it: formatting a file needs no device mapper), attached read-only from the store.
  luksImage =
    scenario:
    pkgs.runCommand "agenixd-test-luks-${scenario.luks.volume}.img" { nativeBuildInputs = [ pkgs.cryptsetup ]; } ''
      truncate -s 32M $out
      printf %s ${lib.escapeShellArg scenario.secrets.${scenario.luks.keySecret}.content} > key
      cryptsetup luksFormat --batch-mode --disable-locks --type luks2 --pbkdf pbkdf2 \
        --pbkdf-force-iterations 1000 --uuid ${scenario.luks.uuid} $out key
    '';

  # The scenario fields that are options of age.secrets.<n> and age.templates.<n> alike.
  installedOptions = [
    "name"
    "path"
    "mode"
    "owner"
    "group"
    "symlink"
    "restartUnits"
    "reloadUnits"
  ];

  secretOptions =
    attr: def:
    {
      # machineFile: a file on the machine's disk, made by the steps (a string, read at activation).
      file =
        if def ? machineFile then
          def.machineFile
        else
          encryptTo (if def.toPlugin or false then pluginKey def.pluginName else hostKey) attr def;
    }
    // lib.filterAttrs (
      n: _:
      lib.elem n (
        installedOptions
        ++ [
          "trim"
          "credential"
        ]
      )
    ) def;

  # `{{attr}}` in a template's content is `''${config.age.placeholder.<attr>}`: a secret that is
  # not declared fails the evaluation there, as it would in a user's configuration.
  withPlaceholders =
    placeholder: text:
    lib.concatStrings (
      map (part: if builtins.isList part then placeholder.${builtins.head part} else part) (
        builtins.split "\\{\\{([^{}]+)}}" text
      )
    );

  templateOptions =
    placeholder: _: def:
    {
      content = withPlaceholders placeholder def.content;
    }
    // lib.filterAttrs (n: _: lib.elem n installedOptions) def;

  # scenario.home: the user's Home Manager configuration (nix/home-manager.nix), its secrets
  # encrypted to the user's key, and its user units.
  homeSecretOptions =
    attr: def:
    { file = encryptTo userKey attr def; }
    // lib.filterAttrs (n: _: lib.elem n (installedOptions ++ [ "trim" ])) def;

  homeModule =
    home: configuration:
    { config, ... }:
    {
      imports = [ homeManager.module ];
      home.stateVersion = "24.11";
      age.secrets = lib.mapAttrs homeSecretOptions configuration.secrets;
      age.templates = lib.mapAttrs (templateOptions config.age.placeholder) configuration.templates;
      systemd.user.services = lib.mapAttrs (name: s: {
        Unit = {
          Description = s.description or name;
        }
        // (s.unitConfig or { });
        Service = (s.serviceConfig or { }) // {
          ExecStart = "${pkgs.writeShellScript "${name}-start" "set -e\n${s.script}"}";
        };
        Install.WantedBy = s.wantedBy or [ ];
      }) (home.services or { });
    };

  # The home configurations, complete: "base" and the others, each given secret or template
  # replacing the base one (as harness/scenario.ts's homeConfigurations).
  homeConfigurations =
    home:
    let
      base = {
        secrets = home.secrets;
        templates = home.templates or { };
      };
    in
    { inherit base; }
    // lib.mapAttrs (_: c: {
      secrets = base.secrets // (c.secrets or { });
      templates = base.templates // (c.templates or { });
    }) (home.configurations or { });

  homeSettings =
    scenario:
    let
      home = scenario.home;
      user = scenario.users.${home.user};
      configurations = homeConfigurations home;
    in
    if homeManager == null then
      throw "agenixd VM test ${scenario.description}: a scenario with a Home Manager user needs the homeManager argument"
    else
      {
        imports = [ homeManager.nixosModule ];
        users.users.${home.user}.linger = true;
        home-manager.users.${home.user} = homeModule home configurations.base;
        # The user's key where Home Manager's default age.identityPaths looks, before the
        # user's manager starts agenixd.service.
        systemd.services."agenixd-test-user-key" = {
          wantedBy = [ "multi-user.target" ];
          before = [
            "user@${toString user.uid}.service"
            "home-manager-${home.user}.service"
          ];
          serviceConfig.Type = "oneshot";
          script = ''
            install -d -m 0700 -o ${home.user} -g ${user.group} ${user.home}/.ssh
            install -m 0600 -o ${home.user} -g ${user.group} ${userKey}/key ${user.home}/.ssh/id_ed25519
          '';
        };
        # `homeSwitch` to <name>: the specialisation home-<name> (vm-tests/steps.py).
        specialisation = lib.mapAttrs' (
          name: c:
          lib.nameValuePair "home-${name}" {
            inheritParentConfig = true;
            configuration = {
              home-manager.users.${home.user} = lib.mkForce (homeModule home c);
            };
          }
        ) configurations;
      };

  loadScenario = name: builtins.fromJSON (builtins.readFile (./scenarios + "/${name}.json"));

  /**
    The kinds of machine a test may run its scenario on, by name: how users are created and how
    the machine boots (docs/boot.md).
  */
  machineKinds = {
    # Users from the perl activation script; nixpkgs' default initrd.
    perl = {
      userManagement = "perl";
    };
    # systemd-sysusers, from a systemd initrd.
    sysusers = {
      userManagement = "sysusers";
      systemdInitrd = true;
    };
    # userborn, from a systemd initrd, /etc an overlay mounted by the initrd.
    userborn = {
      userManagement = "userborn";
      systemdInitrd = true;
      etcOverlay = true;
    };
  };

  node =
    scenario: kindName:
    { config, lib, ... }:
    let
      kind = machineKinds.${kindName};
      # A secret `toPlugin` is encrypted to the scenario's plugin key.
      withPluginName = lib.mapAttrs (_: def: def // lib.optionalAttrs (def.toPlugin or false) { pluginName = scenario.plugin.name; });
      users = scenario.users or { };
      passwordUsers = lib.filterAttrs (_: u: u ? hashedPasswordSecret) users;
      hostKeyPath = "/etc/ssh/ssh_host_ed25519_key";
      # The booted configuration's, for what a specialisation derives from it.
      parent = config;
    in
    {
      # A Home Manager user's settings are a module of their own, merged by the module system.
      imports = [ agenixdModule ] ++ lib.optional (scenario ? home) (homeSettings scenario);

      environment.etc."ssh/ssh_host_ed25519_key" = {
        source = "${hostKey}/key";
        mode = "0600";
      };
      environment.etc."ssh/ssh_host_ed25519_key.pub".source = "${hostKey}/key.pub";
      # The data volume opened by systemd-cryptsetup@<volume>.service with the installed key.
      environment.etc.crypttab = lib.mkIf (scenario ? luks) {
        text = "${scenario.luks.volume} UUID=${scenario.luks.uuid} ${config.age.secrets.${scenario.luks.keySecret}.path} luks,readonly\n";
      };
      virtualisation.qemu.drives = lib.mkIf (scenario ? luks) [
        {
          name = "luks";
          file = "${luksImage scenario}";
          driveExtraOpts = {
            format = "raw";
            readonly = "on";
          };
        }
      ];
      environment.etc."age/${scenario.plugin.name or "no-plugin"}.identity" = lib.mkIf (scenario ? plugin) {
        source = "${pluginKey scenario.plugin.name}/identity";
        mode = "0600";
      };

      # Perl activation installs password secrets from an activation script that runs before
      # `users`, which runs before `etc` at first boot: the key above is not there yet, so that
      # phase is given a key it can read where it lies (docs/boot.md).
      # scenario.sealedIdentity: a .cred the steps seal inside the machine (systemd-creds), first.
      age.identityPaths =
        lib.optional (scenario ? sealedIdentity) scenario.sealedIdentity.path
        ++ lib.optional (scenario ? plugin) "/etc/age/${scenario.plugin.name}.identity"
        ++ [
          hostKeyPath
        ]
      ++ lib.optional (kind.userManagement == "perl" && passwordUsers != { }) "${hostKey}/key";
      age.secrets = lib.mapAttrs secretOptions (withPluginName scenario.secrets);
      age.plugins = lib.optional (scenario ? plugin) (pluginPackage scenario.plugin.name (scenario.plugin.mode or "normal"));
      age.templates = lib.mapAttrs (templateOptions config.age.placeholder) (scenario.templates or { });
      # scenario.pcscd: the test plugin reaches "its card" through pcscd's socket, as
      # age-plugin-yubikey does; the module then enables services.pcscd (the real one here).
      age.pcscdPlugins = lib.mkIf (scenario.pcscd or false) [ scenario.plugin.name ];
      age.credstore.enable = scenario.credstore or false;
      age.credstore.encrypted = scenario.credstoreEncrypted or false;
      age.credstore.encryptWith = scenario.encryptWith or "auto";
      # nixos-rebuild dry-activate runs agenixd's dry run (an activation snippet; nixpkgs warns).
      age.dryActivate = scenario.dryActivate or false;
      # `agenixd status` in the steps; age and age-keygen to seal an identity and encrypt to it.
      environment.systemPackages = [ config.age.package ] ++ lib.optional (scenario ? sealedIdentity) pkgs.age;
      # scenario.tpm: a TPM 2.0 emulated by swtpm, as harness/qemu.ts attaches one.
      virtualisation.tpm.enable = lib.mkIf (scenario.tpm or false) true;

      specialisation = lib.mapAttrs (_: spec: {
        inheritParentConfig = true;
        # Its own config: a secret only this configuration declares has a placeholder there.
        configuration =
          { config, ... }:
          {
            # A secret removed (removeSecrets) takes the whole set: attrsOf cannot drop one by merging.
            age.secrets =
              if spec ? removeSecrets then
                lib.mkForce (
                  lib.mapAttrs secretOptions (withPluginName (removeAttrs (scenario.secrets // spec.secrets or { }) spec.removeSecrets))
                )
              else
                lib.mapAttrs (attr: def: lib.mkForce (secretOptions attr def)) (withPluginName (spec.secrets or { }));
            age.plugins = lib.mkIf (spec ? pluginMode) (lib.mkForce [ (pluginPackage scenario.plugin.name spec.pluginMode) ]);
            age.templates = lib.mapAttrs (
              attr: def: lib.mkForce (templateOptions config.age.placeholder attr def)
            ) (spec.templates or { });
            age.credstore.enable = lib.mkIf (spec ? credstore) (lib.mkForce spec.credstore);
            age.credstore.encrypted = lib.mkIf (spec ? credstoreEncrypted) (lib.mkForce spec.credstoreEncrypted);
            # The same agenixd at another store path, as after a package update.
            age.package = lib.mkIf (spec.rebuiltPackage or false) (
              pkgs.symlinkJoin {
                name = "agenixd-rebuilt";
                paths = [ parent.age.package ];
                # age.package must be an agenixd (nix/module.nix checks meta.mainProgram).
                meta.mainProgram = "agenixd";
              }
            );
          };
      }) (scenario.specialisations or { });

      users.mutableUsers = false;
      users.users = lib.mapAttrs (_: u: {
        inherit (u) uid group;
        isNormalUser = u.isNormalUser or false;
        isSystemUser = !(u.isNormalUser or false);
        home = u.home or "/var/empty";
        createHome = u ? home;
        shell = lib.mkIf (u.loginShell or false) pkgs.bashInteractive;
        hashedPasswordFile = if u ? hashedPasswordSecret then config.age.secrets.${u.hashedPasswordSecret}.path else null;
      }) users;
      users.groups = lib.mapAttrs' (_: u: lib.nameValuePair u.group { inherit (u) gid; }) (
        lib.filterAttrs (_: u: u.group != "users") users
      );

      systemd.sysusers.enable = kind.userManagement == "sysusers";
      services.userborn.enable = kind.userManagement == "userborn";
      boot.initrd.systemd.enable = lib.mkIf (kind.systemdInitrd or false) true;
      system.etc.overlay.enable = kind.etcOverlay or false;

      systemd.services = lib.mapAttrs (_: s: {
        inherit (s) script;
        description = s.description or "";
        wantedBy = s.wantedBy or [ ];
        unitConfig = s.unitConfig or { };
        serviceConfig = s.serviceConfig or { };
      }) (scenario.services or { });
    };
in
{
  inherit machineKinds;

  /**
    The test for scenario `name`. `machines`: names from `machineKinds`; one machine per entry,
    named after it, each running all the steps.
  */
  scenarioTest =
    {
      name,
      machines ? [ "perl" ],
    }:
    let
      scenario = loadScenario name;
    in
    pkgs.testers.runNixOSTest {
      name = "agenixd-${name}";
      nodes = lib.genAttrs machines (node scenario);
      testScript = ''
        import json

        ${builtins.readFile ./steps.py}

        with open("${pkgs.writeText "agenixd-scenario-${name}.json" (builtins.toJSON scenario)}") as f:
            scenario = json.load(f)

        for machine in [${lib.concatStringsSep ", " machines}]:
            with subtest(f"${name} on {machine.name}"):
                run_steps(machine, scenario["steps"])
                machine.shutdown()
      '';
    };
}
