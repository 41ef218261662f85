# A stand-in package for the Home Manager evaluations: a derivation-shaped attrset with a fixed
# store path, nothing to build.
pname: {
  type = "derivation";
  name = "${pname}-1";
  inherit pname;
  meta.mainProgram = pname;
  outPath = "/nix/store/00000000000000000000000000000000-${pname}-1";
}
