# How early agenixd.service may run at boot, from where its inputs live (issue 19). Builtins only,
# so CI evaluates it with plain nix-instantiate.
#
# agenix decrypted in stage-2 activation, before systemd started any unit, so its users point
# early consumers at /run/agenix: a crypttab keyfile for a data volume (systemd-cryptsetup@, after
# cryptsetup-pre.target), a ZFS keylocation=file:// (zfs-import-*, before zfs-import.target), a
# network unit with DefaultDependencies=no (after network-pre.target). agenixd can run that early
# only when everything it reads or writes outside /run is on a file system the initrd mounts (the
# root, /nix, /var, ... or one marked neededForBoot): such a mount is already there when systemd
# starts, so RequiresMountsFor= it costs nothing. A later mount (a separate /persist without
# neededForBoot) may itself need what those targets come before: on a crypttab volume, a ZFS
# dataset or a network file system, ordering agenixd before cryptsetup-pre.target (...) would
# close a cycle, which systemd breaks at boot by dropping a job. So it is not, and the module
# warns (test/boot-order.test.ts shows both with systemd-analyze verify).
#
# Arguments:
#   fileSystems    config.fileSystems: attrset of { mountPoint, neededForBoot ? false, ... }
#   identityPaths  list of identity paths (strings or paths)
#   secretPaths    attrset: the option that sets a path written outside secretsDir
#                  (`age.secrets."<name>".path`, `age.templates."<name>".path`) -> the path
#   usersPhase     bool: agenixd-users.service runs (some secret is a hashedPasswordFile)
#   userManagement "perl", "sysusers" or "userborn"
#
# Result:
#   early     bool: agenixd.service is ordered before cryptsetup-pre.target, zfs-import.target
#             and network-pre.target
#   late      list of { option, path, mount }: what sits on a mount the initrd does not mount
#   warnings  list of strings, one per late input, naming the option, the path and the mount;
#             and under userborn with the users phase, the ordering cycle it closes
{
  fileSystems,
  identityPaths,
  secretPaths ? { },
  usersPhase ? false,
  userManagement ? "perl",
}:
let
  # nixpkgs' utils.pathsNeededForBoot: mounted by the initrd whether or not neededForBoot is set.
  pathsNeededForBoot = [ "/" "/etc" "/nix" "/nix/store" "/usr" "/var" "/var/lib" "/var/lib/nixos" "/var/log" ];

  mounts = map (fs: {
    mountPoint = fs.mountPoint;
    boot = (fs.neededForBoot or false) || builtins.elem fs.mountPoint pathsNeededForBoot;
  }) (builtins.filter (fs: fs ? mountPoint) (builtins.attrValues fileSystems));

  len = builtins.stringLength;
  under = mp: path: mp == "/" || path == mp || builtins.substring 0 (len mp + 1) path == "${mp}/";

  # The mount holding a path: the longest mount point it is under; the root when none is declared.
  mountOf =
    path:
    builtins.foldl' (best: m: if under m.mountPoint path && len m.mountPoint > len best.mountPoint then m else best) {
      mountPoint = "/";
      boot = true;
    } mounts;

  inputs =
    map (p: { option = "age.identityPaths"; path = toString p; }) identityPaths
    ++ map (option: { inherit option; path = toString secretPaths.${option}; }) (builtins.attrNames secretPaths);

  late = builtins.concatMap (
    i:
    let
      m = mountOf i.path;
    in
    if m.boot then [ ] else [ (i // { mount = m.mountPoint; }) ]
  ) inputs;

  lateWarning =
    l:
    "${l.option} has ${l.path}, on ${l.mount}, a file system the initrd does not mount (fileSystems.\"${l.mount}\".neededForBoot is false). "
    + "agenixd.service then waits for that mount and cannot run before cryptsetup-pre.target, zfs-import.target and network-pre.target, "
    + "so a crypttab keyfile, a ZFS keylocation or an early network unit reading /run/agenix fails at boot. "
    + "Set fileSystems.\"${l.mount}\".neededForBoot = true, or move the file to the root file system.";

  userbornCycle =
    l:
    "agenixd-users.service (secrets needed for users) waits for ${l.mount} (${l.option} has ${l.path}), but runs before userborn.service, "
    + "which runs before local-fs-pre.target and so before ${l.mount} is mounted: systemd breaks that ordering cycle at boot by dropping a job. "
    + "Set fileSystems.\"${l.mount}\".neededForBoot = true, or keep the identities on a file system the initrd mounts.";

  identityLate = builtins.filter (l: l.option == "age.identityPaths") late;
in
{
  early = late == [ ];
  inherit late;
  warnings =
    map lateWarning late
    ++ (if usersPhase && userManagement == "userborn" then map userbornCycle identityLate else [ ]);
}
