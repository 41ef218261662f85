# The manifest of a user's `agenixd activate --user` (docs/home-manager.md), from the plain values
# of the Home Manager module's `age.*` options. Builtins only, like ./manifest.nix, which it wraps:
# used by ./home-manager.nix and by the boot harness (../harness/home.nix).
#
# Arguments: secrets, templates, identityPaths, secretsDir, secretsMountPoint, keepGenerations
# and writeText as ./manifest.nix takes them (with the options' defaults filled in, no owner or
# group), and `user`: the user's name, which owns every secret and template.
#
# Paths may start with the literal `${XDG_RUNTIME_DIR}` (agenix's default): ./checks.nix wants
# absolute paths, so such a path is checked as a directory below /run/user that no real path is,
# and written back into the manifest as given; agenixd --user expands it (src/user-host.ts).
#
# Result: the manifest's JSON text.
{
  secrets,
  templates ? { },
  identityPaths,
  secretsDir,
  secretsMountPoint,
  keepGenerations,
  user,
  writeText ? builtins.toFile,
}:
let
  checkedRuntimeDir = "/run/user/.agenixd-xdg-runtime-dir";
  forCheck = p: builtins.replaceStrings [ "\${XDG_RUNTIME_DIR}" ] [ checkedRuntimeDir ] (toString p);
  # A user's secrets are the user's: no owner or group option, and nothing to chown.
  owned = builtins.mapAttrs (
    _: s:
    s
    // {
      owner = user;
      group = user;
      path = forCheck s.path;
    }
  );
  manifest = import ./manifest.nix {
    secrets = owned secrets;
    templates = owned templates;
    identityPaths = map forCheck identityPaths;
    secretsDir = forCheck secretsDir;
    secretsMountPoint = forCheck secretsMountPoint;
    inherit keepGenerations writeText;
  };
in
builtins.replaceStrings [ checkedRuntimeDir ] [ "\${XDG_RUNTIME_DIR}" ] (builtins.toJSON manifest)
