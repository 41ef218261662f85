# Scenario "password" (scenarios/password.json) as a NixOS VM test: login with a
# hashedPasswordFile secret, once per way NixOS creates users.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "password";
  machines = [
    "perl"
    "sysusers"
    "userborn"
  ];
}
