# age.plugins: the age plugin binaries (age-plugin-yubikey, age-plugin-tpm, …) agenixd may run for
# identities AGE-PLUGIN-<NAME>-1… in age.identityPaths (docs/plugins.md). agenixd looks up
# age-plugin-<name> in the bin directories of these packages and nowhere else; the manifest
# carries those directories (pluginDirs) and the unit gets them on its PATH.
{ config, lib, ... }:
let
  inherit (lib) literalExpression mkOption types;

  # Plugins that talk to a smart card through pcscd (PC/SC), by their age-plugin-<name> name.
  pcscdUsers = [
    "yubikey"
    "openpgp-card"
  ];
  pluginName = p: lib.removePrefix "age-plugin-" (lib.getName p);
in
{
  options.age.plugins = mkOption {
    type = types.listOf types.package;
    default = [ ];
    example = literalExpression "[ pkgs.age-plugin-yubikey pkgs.age-plugin-tpm ]";
    description = ''
      Packages whose `bin/age-plugin-*` agenixd may run to unwrap secrets for the age plugin
      identities (`AGE-PLUGIN-<NAME>-1…`) of {option}`age.identityPaths`; this replaces an
      `age.ageBin` that finds plugins on its PATH. A plugin runs as root, non-interactively
      (a request for a PIN, a touch or a confirmation is refused), with only these packages'
      `bin` directories as its PATH, once per activation, killed after 30 s or 4 MiB of output.
      A package named `age-plugin-tpm…` also gets the unit access to `/dev/tpmrm0`.
    '';
  };

  options.age.pcscdPlugins = mkOption {
    type = types.listOf (types.strMatching "[a-z0-9][a-z0-9._+-]{0,63}");
    default = lib.filter (n: lib.elem n pcscdUsers) (map pluginName config.age.plugins);
    defaultText = literalExpression ''
      the names of age.plugins packages among "age-plugin-yubikey" and "age-plugin-openpgp-card", without "age-plugin-"
    '';
    example = [ "yubikey" ];
    description = ''
      Plugins of {option}`age.plugins`, by name (`yubikey` for `age-plugin-yubikey`), that reach
      their device through pcscd. pcscd is started by `pcscd.socket`, which listens only after
      `sysinit.target`, and agenixd.service runs before it: at boot such a plugin is not run, and
      a secret that no other identity opens is deferred (it is not a failure: the unit
      succeeds). `agenixd-deferred.service`, ordered after `pcscd.socket` and before the units
      that name a secret in `restartUnits` or `reloadUnits`, then runs the same activation and
      installs it. At a switch pcscd listens already and nothing is deferred. Enables
      {option}`services.pcscd.enable` by default.
    '';
  };

  # Wired in ./module.nix: the manifest's pluginDirs and pluginSockets, the units' PATH and
  # DeviceAllow, and agenixd-deferred.service (./unit.nix).
}
