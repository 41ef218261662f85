# Scenario "credstore-encrypted" (scenarios/credstore-encrypted.json) as a NixOS VM test: a
# DynamicUser= service's LoadCredentialEncrypted= without a path, served by agenixd's sealed
# credentials (age.credstore.encrypted), restarted when its secret changes.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "credstore-encrypted";
  machines = [ "sysusers" ];
}
