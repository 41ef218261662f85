# Scenario "unit-change" (scenarios/unit-change.json) as a NixOS VM test: one run of agenixd per
# switch when its unit changes (the real switch-to-configuration).
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "unit-change";
  machines = [ "sysusers" ];
}
