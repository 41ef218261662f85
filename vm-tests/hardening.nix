# Scenario "hardening" (scenarios/hardening.json) as a NixOS VM test: the hardened units do the
# whole job, with the password phase as a unit (sysusers, userborn).
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "hardening";
  machines = [
    "sysusers"
    "userborn"
  ];
}
