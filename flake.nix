{
  description = "agenixd: agenix's NixOS module, with secrets installed by a systemd service";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  # Only for the Home Manager VM test (checks.<system>.home-manager), as agenix's flake has it;
  # a configuration using agenixd can make it follow its own (inputs.agenixd.inputs.home-manager.follows).
  inputs.home-manager = {
    url = "github:nix-community/home-manager";
    inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs =
    {
      self,
      nixpkgs,
      home-manager,
    }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: { agenixd = final.callPackage ./nix/package.nix { }; };

      packages = forAllSystems (pkgs: rec {
        agenixd = pkgs.callPackage ./nix/package.nix { };
        default = agenixd;
      });

      # The module's `age.package` defaults to `pkgs.agenixd` (the overlay) or builds ./nix/package.nix.
      # `age` is the name agenix's flake gives its module (`agenix.nixosModules.age`), so a
      # configuration that imports it by that name only changes the input.
      nixosModules.agenixd = ./nix/module.nix;
      nixosModules.default = self.nixosModules.agenixd;
      nixosModules.age = self.nixosModules.agenixd;

      # Home Manager: the same names as agenix's (`agenix.homeManagerModules.age`), docs/home-manager.md.
      homeManagerModules.agenixd = ./nix/home-manager.nix;
      homeManagerModules.default = self.homeManagerModules.agenixd;
      homeManagerModules.age = self.homeManagerModules.agenixd;

      checks = forAllSystems (
        pkgs:
        import ./vm-tests {
          inherit pkgs;
          agenixdModule = self.nixosModules.default;
          homeManager = {
            nixosModule = home-manager.nixosModules.home-manager;
            module = self.homeManagerModules.default;
          };
        }
        # The package itself, so `nix flake check` builds it (and its install check) too.
        // { package = self.packages.${pkgs.stdenv.hostPlatform.system}.agenixd; }
      );

      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
