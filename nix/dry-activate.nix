# The text of the activation snippet that makes `nixos-rebuild dry-activate` show agenixd's plan
# (age.dryActivate). Builtins only: nix/module.nix and the boot harness (harness/system.nix) use
# the same text.
#
# switch-to-configuration starts no unit on `dry-activate`: it runs only the activation snippets
# that support dry activation, with NIXOS_ACTION=dry-activate; the same snippets also run on every
# real activation (boot, switch, test), where this one does nothing. The dry run decrypts every
# secret, so it runs in a transient unit kept from swap and core files (./transient-run.nix;
# systemd is running at dry-activate time). It asks systemctl which of the units it would restart
# or reload are running, and lists those in /run/nixos for switch-to-configuration's summary
# (src/dry-activation.ts).
#
# Arguments: agenixd and systemctl (absolute paths; systemd-run is systemctl's neighbour, as
# ./unit.nix finds it), manifest (its store path).
{
  agenixd,
  systemctl,
  manifest,
}:
''
  if [ "''${NIXOS_ACTION-}" = dry-activate ]; then
    ${import ./transient-run.nix {
      systemdRun = "${dirOf systemctl}/systemd-run";
      environment = {
        NIXOS_ACTION = "dry-activate";
        AGENIXD_SYSTEMCTL = systemctl;
      };
      command = "${agenixd} activate --dry-run --manifest ${manifest}";
    }}
  fi
''
