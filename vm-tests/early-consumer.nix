# Scenario "early-consumer" (scenarios/early-consumer.json) as a NixOS VM test.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "early-consumer";
  machines = [ "perl" ];
}
