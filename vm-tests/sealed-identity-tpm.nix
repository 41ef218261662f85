# Scenario "sealed-identity-tpm" (scenarios/sealed-identity-tpm.json) as a NixOS VM test: the
# same with `--with-key=tpm2 --tpm2-pcrs=16` and a TPM emulated by swtpm
# (virtualisation.tpm.enable); a broken PCR policy, then a cleared TPM (TPM2_Clear: a new storage
# seed), fail only that identity. The raw TPM commands are written with dd, not printf: bash
# line-buffers its stdout and would split a command at its 0x0a byte, which the TPM refuses.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "sealed-identity-tpm";
  machines = [ "sysusers" ];
}
