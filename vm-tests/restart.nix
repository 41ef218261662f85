# Scenario "restart" (scenarios/restart.json) as a NixOS VM test: restartUnits and reloadUnits
# acting on real services at each switch (never at boot), and nixos-rebuild dry-activate.
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "restart";
  machines = [ "perl" ];
}
