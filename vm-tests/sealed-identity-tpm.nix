# Scenario "sealed-identity-tpm" (scenarios/sealed-identity-tpm.json) as a NixOS VM test: the
# same with `--with-key=tpm2` and a TPM emulated by swtpm (virtualisation.tpm.enable); a cleared
# TPM fails only that identity.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "sealed-identity-tpm";
  machines = [ "sysusers" ];
}
