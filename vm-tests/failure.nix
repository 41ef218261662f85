# Scenario "failure" (scenarios/failure.json) as a NixOS VM test.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "failure";
  machines = [ "perl" ];
}
