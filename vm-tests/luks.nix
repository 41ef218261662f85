# Scenario "luks" (scenarios/luks.json) as a NixOS VM test: a LUKS data volume in
# /etc/crypttab whose keyfile is /run/agenix/luks-key, opened at boot and after a reboot.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "luks";
  machines = [ "sysusers" ];
}
