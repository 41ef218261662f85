# A command line that runs `command` in a transient systemd unit kept from swap and core files
# as agenixd.service is (MemorySwapMax=0, LimitCORE=0), and bounded in time as its start is
# (RuntimeMaxSec=3min, agenixd.service's TimeoutStartSec), for the runs that decrypt outside the
# units: the dry run of `nixos-rebuild dry-activate` (./dry-activate.nix) and, at a switch, the
# users phase of perl activation (./unit.nix). --pipe gives the caller its output, --wait its
# exit status; --setenv passes `environment` (the manager's environment is not the caller's).
# Builtins only.
#
# Arguments: systemdRun (absolute path), environment (attrset of strings), command (string).
{
  systemdRun,
  environment ? { },
  command,
}:
builtins.concatStringsSep " " (
  [
    systemdRun
    "--quiet --pipe --wait --collect --service-type=exec"
    "--property=MemorySwapMax=0 --property=LimitCORE=0 --property=RuntimeMaxSec=3min"
  ]
  ++ map (n: "--setenv=${n}=${environment.${n}}") (builtins.attrNames environment)
  ++ [ command ]
)
