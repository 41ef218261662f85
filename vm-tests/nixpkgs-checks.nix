# The assertions and warnings nixpkgs would raise for a test machine, for what these tests set
# (users, how they are created, how the machine boots, activation scripts), so the evaluation
# without nixpkgs (./stand-ins.nix) refuses what a real evaluation would. Written from a reading
# of nixpkgs: nixos/modules/system/boot/systemd/sysusers.nix, services/system/userborn.nix,
# config/users-groups.nix, system/etc/etc.nix, system/activation/nixos-init.nix, and the
# deprecation of activation scripts (nixpkgs #475305; a warning for every non-empty script not
# defined by NixOS itself, nixpkgs #557322).
#
# Argument (option values, already merged):
#   { users: { <name>: { isNormalUser, isSystemUser, uid, group, hashedPasswordFile } },
#     sysusers, userborn, systemdInitrd, etcOverlay, etcOverlayMutable, nixosInit: bool,
#     activationScripts: { <name>: { text?, deps? } }: those of the test and of our module, not
#     NixOS's own }
# Result: { assertions: [ message ], warnings: [ message ] }: the failed assertions' messages.
{
  users,
  sysusers,
  userborn,
  systemdInitrd,
  etcOverlay ? false,
  etcOverlayMutable ? true,
  nixosInit ? false,
  activationScripts,
}:
let
  inherit (builtins) attrNames filter concatMap;

  failing = checks: map (c: c.message) (filter (c: !c.assertion) checks);

  userNames = attrNames users;

  # Activation scripts NixOS itself still defines (the exemption list of nixpkgs #557322).
  nixosScripts = [
    "specialfs"
    "users"
    "groups"
    "etc"
    "hashes"
    "usrbinenv"
    "binsh"
    "stdio"
    "wrappers"
    "var"
    "nix"
  ];

  userChecks = concatMap (
    name:
    let
      u = users.${name};
      effectivelySystem = u.isSystemUser || (u.uid != null && u.uid < 1000);
    in
    [
      {
        assertion = effectivelySystem != u.isNormalUser;
        message = "Exactly one of users.users.${name}.isSystemUser and users.users.${name}.isNormalUser must be set.";
      }
      {
        assertion = u.group != "";
        message = "users.users.${name}.group is unset. This used to default to nogroup, but this is unsafe.";
      }
    ]
    ++ (
      if sysusers then
        [
          {
            assertion = !u.isNormalUser;
            message = "${name} is a normal user. systemd-sysusers doesn't create normal users, only system users.";
          }
        ]
      else
        [ ]
    )
  ) userNames;

  # nixpkgs sets it to "" under sysusers and userborn; any definition of ours (even of `deps`
  # alone) would make it something else.
  usersScriptEmpty = !(activationScripts ? users);
in
{
  assertions = failing (
    userChecks
    ++ [
      {
        assertion = !sysusers || usersScriptEmpty;
        message = "system.activationScripts.users has to be empty to use systemd-sysusers";
      }
      {
        assertion = !userborn || usersScriptEmpty;
        message = "system.activationScripts.users has to be empty to use userborn";
      }
      {
        assertion = !(sysusers && userborn);
        message = "You cannot use systemd-sysusers and Userborn at the same time";
      }
      {
        assertion = !nixosInit || systemdInitrd;
        message = "nixos-init can only be used with systemd initrd";
      }
      {
        assertion = !etcOverlay || systemdInitrd;
        message = "`system.etc.overlay.enable` requires `boot.initrd.systemd.enable`";
      }
      {
        assertion = !etcOverlay || etcOverlayMutable || sysusers || userborn;
        message = "`!system.etc.overlay.mutable` requires `systemd.sysusers.enable` or `services.userborn.enable`";
      }
    ]
  );

  warnings = map (name: "system.activationScripts.${name} is deprecated (nixpkgs #475305): it has a body and NixOS does not define it") (
    filter (name: !(builtins.elem name nixosScripts) && (activationScripts.${name}.text or "") != "") (
      attrNames activationScripts
    )
  );
}
