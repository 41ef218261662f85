# Scenario "switch" (scenarios/switch.json) as a NixOS VM test.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "switch";
  machines = [ "perl" ];
}
