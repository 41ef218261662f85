# Scenario "ordering" (scenarios/ordering.json) as a NixOS VM test.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "ordering";
  machines = [ "perl" ];
}
