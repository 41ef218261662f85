# Scenario "sealed-identity" (scenarios/sealed-identity.json) as a NixOS VM test: an age identity
# sealed in the machine by `systemd-creds encrypt --with-key=host`, first in age.identityPaths; a
# replaced credential.secret fails only that identity.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "sealed-identity";
  machines = [ "sysusers" ];
}
