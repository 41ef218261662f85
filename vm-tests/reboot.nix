# Scenario "reboot" (scenarios/reboot.json) as a NixOS VM test.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "reboot";
  machines = [ "perl" ];
}
