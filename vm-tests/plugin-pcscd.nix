# Scenario "plugin-pcscd" (scenarios/plugin-pcscd.json) as a NixOS VM test: the test plugin in
# age.pcscdPlugins reaches "its card" through pcscd's socket, as age-plugin-yubikey does; the
# module enables the real services.pcscd. At boot the plugin's secret waits for pcscd.socket and
# agenixd-deferred.service installs it.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "plugin-pcscd";
  machines = [ "sysusers" ];
}
