# Scenario "boot" (scenarios/boot.json) as a NixOS VM test, on each kind of machine: perl
# activation with nixpkgs' default initrd, sysusers from a systemd initrd, userborn with /etc as
# an overlay (docs/boot.md).
{ pkgs, agenixdModule }:
(import ./lib.nix { inherit pkgs agenixdModule; }).scenarioTest {
  name = "boot";
  machines = [
    "perl"
    "sysusers"
    "userborn"
  ];
}
