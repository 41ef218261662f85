# How agenixd runs on a NixOS machine: the systemd services, the activation snippets, and the
# rendered unit files of those services. Builtins only, so CI and the boot harness evaluate it
# with plain nix-instantiate and boot exactly what the module declares.
#
# Arguments:
#   agenixd        path (string) of the agenixd executable
#   manifest       path (string) of the manifest file (./manifest.nix, written to the store)
#   identityPaths  list of identity paths; the units wait for the mounts holding them
#   usersPhase     bool (default false): some secret has `neededForUsers`, so it is installed
#                  before users are created, in an early phase
#   userManagement "perl" (default: the activation script creates users), "sysusers"
#                  (systemd.sysusers.enable) or "userborn" (services.userborn.enable)
#
# Result:
#   services           attrset for `systemd.services`: `agenixd`, and `agenixd-users` when the
#                      early phase runs as a unit (usersPhase with sysusers or userborn)
#   activationScripts  attrset for `system.activationScripts`: the empty `agenix` anchor, and with
#                      usersPhase under perl activation the `agenixdUsers` snippet that `users`
#                      depends on
#   unitFiles          attrset "<name>.service" -> unit file text, one per entry of `services`
{
  agenixd,
  manifest,
  identityPaths,
  usersPhase ? false,
  userManagement ? "perl",
}:
let
  renderUnitFile = import ./unit-file.nix;

  usersUnit =
    {
      perl = null;
      sysusers = "systemd-sysusers.service";
      userborn = "userborn.service";
    }
    .${userManagement}
      or (throw "agenixd: userManagement must be \"perl\", \"sysusers\" or \"userborn\", not \"${toString userManagement}\"");

  earlyUnit = usersPhase && usersUnit != null;
  earlySnippet = usersPhase && usersUnit == null;

  optional = cond: xs: if cond then xs else [ ];

  activate = "${agenixd} activate --manifest ${manifest}";

  # Shared by both units: an early oneshot that systemd waits for (sd-notify READY=1), re-run by
  # switch-to-configuration through sysinit-reactivation.target whenever the manifest changes.
  common = {
    requiredBy = [ "sysinit-reactivation.target" ];
    # switch-to-configuration restarts sysinit-reactivation.target at every switch; PartOf= carries
    # that restart to us, so secrets are decrypted again at every switch as agenix's activation
    # script does (a rotated host key, a `file` outside the store), not only when the manifest
    # changes (restartTriggers).
    partOf = [ "sysinit-reactivation.target" ];
    conflicts = [ "shutdown.target" ];
    unitConfig = {
      DefaultDependencies = false;
      # Identities may live on a mount that appears late (impermanence's /persist).
      RequiresMountsFor = map toString identityPaths;
    };
    serviceConfig = {
      Type = "notify";
      RemainAfterExit = true;
    };
    restartTriggers = [ manifest ];
    # A restart is enough: stopping the unit removes nothing.
    stopIfChanged = false;
  };

  agenixdService = common // {
    description = "Install agenix secrets";
    # agenix's unit under sysusers/userborn; units ordered after it keep working.
    aliases = [ "agenix-install-secrets.service" ];
    # Before= is what makes ordinary services (ordered after sysinit.target) find their secrets.
    wantedBy = [ "sysinit.target" ];
    before = [
      "sysinit.target"
      "sysinit-reactivation.target"
      "shutdown.target"
    ];
    # Owners and groups must exist before secrets are chowned to them.
    after = [ "local-fs.target" ] ++ optional (usersUnit != null) [ usersUnit ] ++ optional earlyUnit [ "agenixd-users.service" ];
    serviceConfig = common.serviceConfig // {
      ExecStart = activate;
    };
  };

  agenixdUsersService = common // {
    description = "Install agenix secrets needed to create users";
    wantedBy = [
      "sysinit.target"
      usersUnit
    ];
    # agenixd.service too: both write generations, and a switch restarts both without
    # necessarily restarting the user manager between them.
    before = [
      usersUnit
      "agenixd.service"
      "sysinit.target"
      "sysinit-reactivation.target"
      "shutdown.target"
    ];
    after = [ "systemd-remount-fs.service" ];
    serviceConfig = common.serviceConfig // {
      ExecStart = "${activate} --phase users";
    };
  };

  services = {
    agenixd = agenixdService;
  }
  // (if earlyUnit then { agenixd-users = agenixdUsersService; } else { });
in
{
  inherit services;

  activationScripts = {
    # Kept empty for modules written against agenix that order themselves after it; secrets
    # themselves arrive with agenixd.service.
    agenix = {
      text = "";
      deps = [ "specialfs" ] ++ optional (usersUnit == null) [ "users" ] ++ optional earlySnippet [ "agenixdUsers" ];
    };
  }
  // (
    if earlySnippet then
      {
        # Perl activation creates users before systemd starts any unit, so the password secrets
        # are installed by the activation script itself, at boot and at every switch.
        agenixdUsers = {
          text = "${activate} --phase users";
          deps = [ "specialfs" ];
        };
        users.deps = [ "agenixdUsers" ];
      }
    else
      { }
  );

  unitFiles = builtins.listToAttrs (
    map (name: {
      name = "${name}.service";
      value = renderUnitFile services.${name};
    }) (builtins.attrNames services)
  );
}
