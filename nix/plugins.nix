# age.plugins: the age plugin binaries (age-plugin-yubikey, age-plugin-tpm, …) agenixd may run for
# identities AGE-PLUGIN-<NAME>-1… in age.identityPaths (docs/plugins.md). agenixd looks up
# age-plugin-<name> in the bin directories of these packages and nowhere else; the manifest
# carries those directories (pluginDirs) and the unit gets them on its PATH.
{ lib, ... }:
let
  inherit (lib) literalExpression mkOption types;
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

  # Wired in ./module.nix: the manifest's pluginDirs, and the units' PATH and DeviceAllow
  # (./unit.nix).
}
