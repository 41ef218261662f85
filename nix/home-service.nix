# The user unit `agenixd.service`, as Home Manager's `systemd.user.services.agenixd` (sections
# Unit, Service, Install; Home Manager writes each list as one line per element). Builtins only:
# used by ./home-manager.nix and by the boot harness (../harness/home.nix), so the harness runs
# the unit the module declares.
#
# Arguments:
#   agenixd    the agenixd executable (absolute path)
#   manifest   the store path of the manifest (./home-manifest.nix's text)
#   systemctl  systemctl, by absolute path: how `systemctl --user` restarts the units below
#   triggered  user units named by some restartUnits or reloadUnits: they start after the secrets
{
  agenixd,
  manifest,
  systemctl,
  triggered,
}:
{
  Unit = {
    Description = "agenixd: install this user's age secrets";
    Before = triggered;
  };
  Service = {
    Type = "notify";
    # The launcher is the main process and node its child. Root's node sends its notifications
    # on the launcher's behalf; a user's may not name another pid, so it sends as itself and
    # waits until the manager has read each message (src/notify.ts).
    NotifyAccess = "all";
    RemainAfterExit = true;
    # The manifest's store path is in ExecStart: a switch that changes it changes the unit,
    # which Home Manager's sd-switch restarts.
    ExecStart = "${agenixd} activate --user --manifest ${manifest}";
    Environment = [ "AGENIXD_SYSTEMCTL=${systemctl}" ];
    TimeoutStartSec = "3min";
    UMask = "0077";
    LimitCORE = 0;
    NoNewPrivileges = true;
  };
  Install.WantedBy = [ "default.target" ];
}
