# The manifest agenixd reads (docs/manifest.md), from the plain values of the `age.*` options.
# Builtins only (no nixpkgs): CI evaluates it with `nix-instantiate --eval --strict --json`.
#
# Arguments:
#   secrets           attrset: attribute name -> { name, file, path, mode, owner, group, symlink,
#                     restartUnits ? [ ], reloadUnits ? [ ] } (the evaluated `age.secrets`; other
#                     attributes are ignored)
#   identityPaths     list of absolute paths (strings or path values)
#   secretsDir        string or path, e.g. "/run/agenix"
#   secretsMountPoint string, e.g. "/run/agenix.d"
#   keepGenerations   positive integer
#   passwordFilePaths list of strings (default []): the `hashedPasswordFile`s of users.users;
#                     a secret whose `path` is one of them gets `neededForUsers = true`
#
# Result: the manifest attrset (version 2: every secret carries `restartUnits` and `reloadUnits`,
# empty when not given), ready for builtins.toJSON. Secrets are a list sorted by attribute name;
# modes are written as given. Throws, listing every problem found by ./checks.nix, when the
# configuration would break at activation.
#
# Only `file` may be copied into the store (it is ciphertext); identity paths and directories are
# turned into strings with toString, so a private key given as a path literal never is.
{
  secrets,
  identityPaths,
  secretsDir,
  secretsMountPoint,
  keepGenerations,
  passwordFilePaths ? [ ],
}@args:
let
  problems = import ./checks.nix args;

  passwordFiles = map toString passwordFilePaths;

  entry =
    attr:
    let
      secret = secrets.${attr};
      path = toString secret.path;
    in
    {
      inherit (secret)
        name
        owner
        group
        symlink
        ;
      inherit path;
      # As given: agenixd reads octal and symbolic modes the way agenix's `chmod` does.
      mode = secret.mode;
      file = "${secret.file}";
      neededForUsers = builtins.elem path passwordFiles;
      restartUnits = secret.restartUnits or [ ];
      reloadUnits = secret.reloadUnits or [ ];
    };

  manifest = {
    version = 2;
    secretsDir = toString secretsDir;
    secretsMountPoint = toString secretsMountPoint;
    identityPaths = map toString identityPaths;
    inherit keepGenerations;
    secrets = map entry (builtins.attrNames secrets);
  };
in
if problems == [ ] then
  manifest
else
  throw "agenixd: refusing this age configuration:\n- ${builtins.concatStringsSep "\n- " problems}"
