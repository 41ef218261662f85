# Scenario "home-manager" (scenarios/home-manager.json) as a NixOS VM test: Home Manager's NixOS
# module with ours for a lingering user, the Tabby case end to end. `homeSwitch` steps switch to
# the specialisations home-<name>, whose home-manager-<user>.service runs Home Manager's
# activation (sd-switch) against the user's running manager.
{
  pkgs,
  agenixdModule,
  homeManager,
}:
(import ./lib.nix { inherit pkgs agenixdModule homeManager; }).scenarioTest {
  name = "home-manager";
}
