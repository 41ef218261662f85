# Scenario "password-switch" (scenarios/password-switch.json) as a NixOS VM test: the password
# phase (agenixd-users.service) with restartUnits, at first boot and in a switch that changes the
# password and removes a secret. Not on perl activation: there the phase is an activation script,
# and the scenario orders a unit after agenixd-users.service.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "password-switch";
  machines = [
    "sysusers"
    "userborn"
  ];
}
