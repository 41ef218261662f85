# Builds a NixOS VM test (pkgs.testers.runNixOSTest) from a scenario in ./scenarios/<name>.json,
# the same data the boot harness (../harness) runs under systemd-nspawn and QEMU. The Python
# testScript runs the scenario's steps with ./steps.py, the twin of ../harness/steps.ts.
{ pkgs, agenixdModule }:
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

  encrypt =
    attr: def:
    pkgs.runCommand "${def.sourceName or attr}.age" { nativeBuildInputs = [ pkgs.age ]; } ''
      age -R ${if def.undecryptable or false then strangerKey else hostKey}/key.pub \
        -o $out ${pkgs.writeText "plaintext" def.content}
    '';

  secretOptions =
    attr: def:
    { file = encrypt attr def; }
    // lib.filterAttrs (n: _: lib.elem n [ "name" "path" "mode" "owner" "group" "symlink" ]) def;

  loadScenario = name: builtins.fromJSON (builtins.readFile (./scenarios + "/${name}.json"));

  node =
    scenario: userManagement:
    { config, lib, ... }:
    let
      users = scenario.users or { };
      passwordUsers = lib.filterAttrs (_: u: u ? hashedPasswordSecret) users;
    in
    {
      imports = [ agenixdModule ];

      # Installed by the activation script, which runs before any unit at boot.
      system.activationScripts.agenixdTestHostKey = {
        text = ''
          mkdir -p /etc/ssh
          install -m 0600 ${hostKey}/key /etc/ssh/ssh_host_ed25519_key
          install -m 0644 ${hostKey}/key.pub /etc/ssh/ssh_host_ed25519_key.pub
        '';
        deps = [ "specialfs" ];
      };
      # Under perl activation, password secrets are installed by the activation script itself.
      system.activationScripts.agenixdUsers = lib.mkIf (userManagement == "perl" && passwordUsers != { }) {
        deps = [ "agenixdTestHostKey" ];
      };

      age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
      age.secrets = lib.mapAttrs secretOptions scenario.secrets;

      specialisation = lib.mapAttrs (_: spec: {
        inheritParentConfig = true;
        configuration.age.secrets = lib.mapAttrs (attr: def: lib.mkForce (secretOptions attr def)) spec.secrets;
      }) (scenario.specialisations or { });

      users.mutableUsers = false;
      users.users = lib.mapAttrs (_: u: {
        inherit (u) uid group;
        isNormalUser = u.isNormalUser or false;
        isSystemUser = !(u.isNormalUser or false);
        hashedPasswordFile = if u ? hashedPasswordSecret then config.age.secrets.${u.hashedPasswordSecret}.path else null;
      }) users;
      users.groups = lib.mapAttrs' (_: u: lib.nameValuePair u.group { inherit (u) gid; }) (
        lib.filterAttrs (_: u: u.group != "users") users
      );

      systemd.sysusers.enable = userManagement == "sysusers";
      services.userborn.enable = userManagement == "userborn";

      systemd.services = lib.mapAttrs (_: s: {
        inherit (s) script;
        description = s.description or "";
        wantedBy = s.wantedBy or [ ];
        serviceConfig = s.serviceConfig or { };
      }) (scenario.services or { });
    };
in
{
  /**
    The test for scenario `name`. `userManagement`: a list of "perl", "sysusers", "userborn";
    one machine per entry, named after it, each running all the steps.
  */
  scenarioTest =
    {
      name,
      userManagement ? [ "perl" ],
    }:
    let
      scenario = loadScenario name;
    in
    pkgs.testers.runNixOSTest {
      name = "agenixd-${name}";
      nodes = lib.genAttrs userManagement (node scenario);
      testScript = ''
        import json

        ${builtins.readFile ./steps.py}

        with open("${pkgs.writeText "agenixd-scenario-${name}.json" (builtins.toJSON scenario)}") as f:
            scenario = json.load(f)

        for machine in [${lib.concatStringsSep ", " userManagement}]:
            with subtest(f"${name} on {machine.name}"):
                run_steps(machine, scenario["steps"])
                machine.shutdown()
      '';
    };
}
