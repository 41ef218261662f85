# Scenario "plugin" (scenarios/plugin.json) as a NixOS VM test: age.plugins with the test plugin
# (test/helpers/age-plugin-test.ts under Node 24), its identity first in age.identityPaths; a
# plugin that asks for a PIN fails only its own secrets.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "plugin";
  machines = [ "sysusers" ];
}
