# The NixOS VM tests, one per scenario in ./scenarios (also run by ../harness without Nix).
# The flake: checks.<system> = import ./vm-tests { inherit pkgs; agenixdModule = self.nixosModules.default;
#   homeManager = { nixosModule = home-manager.nixosModules.home-manager; module = self.homeManagerModules.default; }; }
{
  pkgs,
  agenixdModule,
  homeManager,
}:
{
  boot = import ./boot.nix { inherit pkgs agenixdModule; };
  ordering = import ./ordering.nix { inherit pkgs agenixdModule; };
  early-consumer = import ./early-consumer.nix { inherit pkgs agenixdModule; };
  switch = import ./switch.nix { inherit pkgs agenixdModule; };
  unit-change = import ./unit-change.nix { inherit pkgs agenixdModule; };
  failure = import ./failure.nix { inherit pkgs agenixdModule; };
  reboot = import ./reboot.nix { inherit pkgs agenixdModule; };
  password = import ./password.nix { inherit pkgs agenixdModule; };
  password-switch = import ./password-switch.nix { inherit pkgs agenixdModule; };
  hardening = import ./hardening.nix { inherit pkgs agenixdModule; };
  restart = import ./restart.nix { inherit pkgs agenixdModule; };
  templates = import ./templates.nix { inherit pkgs agenixdModule; };
  credstore-encrypted = import ./credstore-encrypted.nix { inherit pkgs agenixdModule; };
  luks = import ./luks.nix { inherit pkgs agenixdModule; };
  plugin = import ./plugin.nix { inherit pkgs agenixdModule; };
  plugin-pcscd = import ./plugin-pcscd.nix { inherit pkgs agenixdModule; };
  sealed-identity = import ./sealed-identity.nix { inherit pkgs agenixdModule; };
  sealed-identity-tpm = import ./sealed-identity-tpm.nix { inherit pkgs agenixdModule; };
  home-manager = import ./home-manager.nix { inherit pkgs agenixdModule homeManager; };
}
