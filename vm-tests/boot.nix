# Scenario "boot" (scenarios/boot.json) as a NixOS VM test.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "boot";
  userManagement = [ "sysusers" ];
}
