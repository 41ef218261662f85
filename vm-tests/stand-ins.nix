# Evaluates every VM test in ./default.nix without nixpkgs, with stand-ins for the few `pkgs` and
# `lib` functions they use, so CI can catch a broken test definition without Nix's binary cache:
#   nix-instantiate --store dummy:// --eval --strict --json vm-tests/stand-ins.nix
# Each machine's settings are checked as nixpkgs would check them (./nixpkgs-checks.nix), together
# with what our module adds for that machine (../nix/unit.nix): a configuration nixpkgs refuses
# (a normal user under systemd-sysusers, say) shows up here as a failed assertion.
#
# Result: for each test, its name, the generated Python testScript (test/vm-steps.test.ts runs it
# against a stand-in of the test driver) and, per machine: failedAssertions, warnings, the
# specialisations' names, the secrets of its configuration and the templates of each configuration
# (their texts evaluated, so a `{{secret}}` a configuration does not declare fails here).
let
  inherit (builtins)
    any
    attrNames
    attrValues
    filter
    listToAttrs
    map
    readDir
    ;

  lib = rec {
    elem = builtins.elem;
    filterAttrs =
      pred: set:
      listToAttrs (
        map (name: {
          inherit name;
          value = set.${name};
        }) (filter (name: pred name set.${name}) (attrNames set))
      );
    mapAttrs = builtins.mapAttrs;
    mapAttrs' = f: set: listToAttrs (map (name: f name set.${name}) (attrNames set));
    nameValuePair = name: value: { inherit name value; };
    genAttrs =
      names: f:
      listToAttrs (
        map (name: {
          inherit name;
          value = f name;
        }) names
      );
    concatStringsSep = builtins.concatStringsSep;
    concatStrings = builtins.concatStringsSep "";
    optional = cond: x: if cond then [ x ] else [ ];
    optionalAttrs = cond: set: if cond then set else { };
    escapeShellArg = arg: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString arg) + "'";
    mkIf = condition: content: {
      _type = "if";
      inherit condition content;
    };
    mkForce = content: {
      _type = "override";
      priority = 50;
      inherit content;
    };
  };

  # The value a definition gives, or null when an mkIf leaves it undefined.
  resolve =
    v:
    if builtins.isAttrs v && (v._type or "") == "if" then
      (if v.condition then resolve v.content else null)
    else if builtins.isAttrs v && (v._type or "") == "override" then
      resolve v.content
    else
      v;
  orDefault = default: v: if resolve v == null then default else resolve v;

  drv = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  };
  pkgs = {
    inherit lib;
    openssh = drv "openssh";
    age = drv "age";
    bashInteractive = drv "bash-interactive";
    runCommand = name: _env: _script: drv name;
    writeText = name: _text: drv name;
    writeShellScript = name: _text: drv name;
    writeTextFile = args: drv args.name;
    nodejs_24 = drv "nodejs-24";
    cryptsetup = drv "cryptsetup";
    runtimeShell = "/nix/store/00000000000000000000000000000000-bash/bin/bash";
    symlinkJoin = args: drv args.name;
    testers.runNixOSTest = test: test;
  };

  tests = import ./default.nix {
    inherit pkgs;
    agenixdModule = ../nix/module.nix;
    homeManager = {
      nixosModule = "home-manager's NixOS module";
      module = ../nix/home-manager.nix;
    };
  };

  # config.age.secrets.<attr>.path for every secret of every scenario, with the module's default.
  scenarios = map (f: builtins.fromJSON (builtins.readFile (./scenarios + "/${f}"))) (
    filter (f: builtins.match ".*\\.json" f != null) (attrNames (readDir ./scenarios))
  );
  fakeConfig = {
    age.package = drv "agenixd";
    age.secrets = listToAttrs (
      builtins.concatMap (
        s:
        map (attr: {
          name = attr;
          value.path = s.secrets.${attr}.path or "/run/agenix/${s.secrets.${attr}.name or attr}";
        }) (attrNames s.secrets)
      ) scenarios
    );
  };

  # config.age.placeholder as nix/module.nix defines it, for the secrets a configuration declares:
  # a template naming a secret it does not declare fails here, as it would in NixOS.
  withPlaceholders =
    secrets:
    fakeConfig
    // {
      age = fakeConfig.age // {
        placeholder = builtins.mapAttrs (attr: _: "<agenixd:${builtins.hashString "sha256" attr}:placeholder>") secrets;
      };
    };

  # The texts of a configuration's templates, evaluated (placeholders and all); their names.
  templateNames =
    templates:
    builtins.deepSeq (map (t: (resolve t).content) (attrValues templates)) (attrNames templates);

  machine =
    node:
    let
      cfg = node {
        config = withPlaceholders (cfg.age.secrets or { });
        inherit lib;
      };
      # Each specialisation's own module, with the secrets it inherits and those it declares.
      specialisation =
        spec:
        let
          own = spec.configuration {
            config = withPlaceholders ((cfg.age.secrets or { }) // (own.age.secrets or { }));
            inherit lib;
          };
        in
        own;
      sysusers = orDefault false (cfg.systemd.sysusers.enable or false);
      userborn = orDefault false (cfg.services.userborn.enable or false);
      userManagement =
        if userborn then
          "userborn"
        else if sysusers then
          "sysusers"
        else
          "perl";
      users = builtins.mapAttrs (_: u: {
        isNormalUser = orDefault false (u.isNormalUser or false);
        isSystemUser = orDefault false (u.isSystemUser or false);
        uid = orDefault null (u.uid or null);
        group = orDefault "" (u.group or "");
        hashedPasswordFile = orDefault null (u.hashedPasswordFile or null);
      }) (cfg.users.users or { });
      passwordFiles = filter (p: p != null) (map (u: u.hashedPasswordFile) (attrValues users));
      secrets = builtins.mapAttrs (_: resolve) (cfg.age.secrets or { });
      ours = import ../nix/unit.nix {
        agenixd = "/nix/store/00000000000000000000000000000000-agenixd/bin/agenixd";
        manifest = "/nix/store/00000000000000000000000000000000-agenixd-manifest.json";
        identityPaths = cfg.age.identityPaths;
        usersPhase = any (s: builtins.elem (s.path or "") passwordFiles) (
          map (attr: fakeConfig.age.secrets.${attr}) (attrNames secrets)
        );
        inherit userManagement;
      };
      fixtureScripts = cfg.system.activationScripts or { };
      # The snippet nix/module.nix adds with age.dryActivate (which nixpkgs warns about).
      dryActivateScripts =
        if orDefault false (cfg.age.dryActivate or false) then
          {
            agenixdDryActivate = {
              supportsDryActivation = true;
              text = "if [ \"\${NIXOS_ACTION-}\" = dry-activate ]; then agenixd activate --dry-run --manifest ...; fi";
            };
          }
        else
          { };
      checked = import ./nixpkgs-checks.nix {
        inherit users sysusers userborn;
        systemdInitrd = orDefault false (cfg.boot.initrd.systemd.enable or false);
        etcOverlay = orDefault false (cfg.system.etc.overlay.enable or false);
        nixosInit = orDefault false (cfg.system.nixos-init.enable or false);
        activationScripts = ours.activationScripts // dryActivateScripts // fixtureScripts;
      };
      # The node's own specialisations and those of the modules it imports as attrsets (a Home
      # Manager user's settings, vm-tests/lib.nix).
      imported = filter builtins.isAttrs (cfg.imports or [ ]);
      specialisations = attrNames (cfg.specialisation or { }) ++ builtins.concatMap (m: attrNames (m.specialisation or { })) imported;
      # Each Home Manager user's configuration module, evaluated with its own placeholders: a
      # template naming a secret it does not declare fails here.
      homeModuleTemplates =
        module:
        let
          own = module {
            config.age.placeholder = builtins.mapAttrs (attr: _: "<agenixd:${builtins.hashString "sha256" attr}:placeholder>") own.age.secrets;
          };
        in
        templateNames own.age.templates;
      homeTemplates = builtins.concatMap (
        m:
        map (user: homeModuleTemplates m.home-manager.users.${user}) (attrNames (m.home-manager.users or { }))
        ++ map (spec: map (user: homeModuleTemplates (resolve spec.configuration.home-manager.users.${user})) (attrNames spec.configuration.home-manager.users)) (attrValues (m.specialisation or { }))
      ) imported;
    in
    {
      failedAssertions =
        checked.assertions
        # The fixtures themselves define no activation script (nixpkgs #475305).
        ++ map (name: "the test defines system.activationScripts.${name}") (attrNames fixtureScripts);
      inherit (checked) warnings;
      inherit specialisations homeTemplates;
      secrets = attrNames secrets;
      templates = {
        base = templateNames (cfg.age.templates or { });
      }
      // builtins.mapAttrs (_: spec: templateNames ((specialisation spec).age.templates or { })) (
        cfg.specialisation or { }
      );
    };
in
builtins.mapAttrs (_: test: {
  inherit (test) name testScript;
  nodes = builtins.mapAttrs (_: machine) test.nodes;
}) tests
