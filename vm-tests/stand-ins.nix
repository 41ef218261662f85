# Evaluates every VM test in ./default.nix without nixpkgs, with stand-ins for the few `pkgs` and
# `lib` functions they use, so CI can catch a broken test definition without Nix's binary cache:
#   nix-instantiate --store dummy:// --eval --strict --json vm-tests/stand-ins.nix
# Result: for each test, its name, the machines' names, the generated Python and, per machine,
# the settings our lib.nix produced (with the module's options left unevaluated).
let
  inherit (builtins) attrNames filter listToAttrs map;
  lib = rec {
    elem = builtins.elem;
    filterAttrs = pred: set: listToAttrs (map (name: { inherit name; value = set.${name}; }) (filter (name: pred name set.${name}) (attrNames set)));
    mapAttrs = builtins.mapAttrs;
    mapAttrs' = f: set: listToAttrs (map (name: f name set.${name}) (attrNames set));
    nameValuePair = name: value: { inherit name value; };
    genAttrs = names: f: listToAttrs (map (name: { inherit name; value = f name; }) names);
    concatStringsSep = builtins.concatStringsSep;
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkForce = content: { _type = "override"; priority = 50; inherit content; };
  };
  drv = name: { type = "derivation"; inherit name; outPath = "/nix/store/00000000000000000000000000000000-${name}"; };
  pkgs = {
    inherit lib;
    openssh = drv "openssh";
    age = drv "age";
    runCommand = name: _env: _script: drv name;
    writeText = name: _text: drv name;
    testers.runNixOSTest = test: test;
  };
  tests = import ./default.nix { inherit pkgs; agenixdModule = ../nix/module.nix; };
  fakeConfig = {
    age.secrets = builtins.mapAttrs (name: _: { path = "/run/agenix/${name}"; }) {
      passwordfile-user1 = null;
    };
  };
in
builtins.mapAttrs (_: test: {
  inherit (test) name testScript;
  nodes = builtins.mapAttrs (_: node: builtins.removeAttrs (node { config = fakeConfig; inherit lib; }) [ "imports" ]) test.nodes;
}) tests
