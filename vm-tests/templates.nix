# Scenario "templates" (scenarios/templates.json) as a NixOS VM test: a rendered config file and a
# DynamicUser= service's LoadCredential= without a path, both restarted when what they read changes.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "templates";
  machines = [ "sysusers" ];
}
