# The manifest agenixd reads (docs/manifest.md), from the plain values of the `age.*` options.
# Builtins only (no nixpkgs): CI evaluates it with `nix-instantiate --eval --strict --json`.
#
# Arguments:
#   secrets           attrset: attribute name -> { name, file, path, mode, owner, group, symlink,
#                     restartUnits ? [ ], reloadUnits ? [ ], trim ? false, credential ? false }
#                     (the evaluated `age.secrets`; other attributes are ignored)
#   templates         attrset (default { }): attribute name -> { name, content ? null,
#                     file ? null, path, mode, owner, group, symlink, restartUnits ? [ ],
#                     reloadUnits ? [ ] } (the evaluated `age.templates`)
#   identityPaths     list of absolute paths (strings or path values)
#   secretsDir        string or path, e.g. "/run/agenix"
#   secretsMountPoint string, e.g. "/run/agenix.d"
#   keepGenerations   positive integer
#   passwordFilePaths list of strings (default []): the `hashedPasswordFile`s of users.users;
#                     a secret whose `path` is one of them gets `neededForUsers = true`
#   writeText         function name -> text -> store path (default builtins.toFile; the module
#                     passes pkgs.writeText): how a template's `content` is written to the store
#   credstoreEncrypted bool (default false): age.credstore.encrypted; with some credential secret,
#                     `encryptedCredstore` is { dir = "/run/credstore.encrypted"; withKey = encryptWith; }
#   encryptWith       "auto" (default), "host", "tpm2" or "host+tpm2": age.credstore.encryptWith
#
# Result: the manifest attrset (version 2), ready for builtins.toJSON. Every secret carries
# `restartUnits`, `reloadUnits` (empty when not given), `placeholder`, `trim` and `credential`;
# `credstore` is "/run/credstore" when some secret is a credential, null otherwise; `templates`
# lists the templates, each naming its text in the store (`file`), never a secret. Secrets and
# templates are lists sorted by attribute name; modes are written as given. Throws, listing every
# problem found by ./checks.nix, when the configuration would break at activation.
#
# Only `file` may be copied into the store (it is ciphertext, or a template's placeholders);
# identity paths and directories are turned into strings with toString, so a private key given as
# a path literal never is.
{
  secrets,
  templates ? { },
  identityPaths,
  secretsDir,
  secretsMountPoint,
  keepGenerations,
  passwordFilePaths ? [ ],
  writeText ? builtins.toFile,
  credstoreEncrypted ? false,
  encryptWith ? "auto",
}@args:
let
  inherit (builtins)
    any
    attrNames
    attrValues
    concatStringsSep
    genList
    hashString
    match
    stringLength
    substring
    ;

  # checks.nix has its own defaults: `args` holds only what the caller gave.
  problems = import ./checks.nix args;

  passwordFiles = map toString passwordFilePaths;

  # The text that stands for a secret in templates, from its attribute name
  # (docs/manifest.md). module.nix's config.age.placeholder uses the same formula.
  placeholderOf = attr: "<agenixd:${hashString "sha256" attr}:placeholder>";

  secretEntry =
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
      placeholder = placeholderOf attr;
      trim = secret.trim or false;
      credential = secret.credential or false;
    };

  # A store path name from a template name ("tabby/config.toml" -> "agenixd-template-tabby-config.toml"):
  # characters a store path may not hold become "-", and it stays well below the 211 allowed.
  storeName =
    name:
    let
      safe = concatStringsSep "" (
        genList (
          i:
          let
            c = substring i 1 name;
          in
          if match "[A-Za-z0-9+._?=-]" c != null then c else "-"
        ) (stringLength name)
      );
    in
    "agenixd-template-${substring 0 120 safe}";

  templateEntry =
    attr:
    let
      template = templates.${attr};
      content = template.content or null;
    in
    {
      inherit (template)
        name
        owner
        group
        symlink
        mode
        ;
      path = toString template.path;
      # The text holds placeholders only: the secrets are substituted at activation, on the ramfs.
      # `content` is written to the store; a `file` path value is copied there, a string is used as given.
      file = if content != null then "${writeText (storeName template.name) content}" else "${template.file}";
      restartUnits = template.restartUnits or [ ];
      reloadUnits = template.reloadUnits or [ ];
    };

  anyCredential = any (secret: secret.credential or false) (attrValues secrets);

  manifest = {
    version = 2;
    secretsDir = toString secretsDir;
    secretsMountPoint = toString secretsMountPoint;
    identityPaths = map toString identityPaths;
    inherit keepGenerations;
    secrets = map secretEntry (attrNames secrets);
    credstore = if anyCredential then "/run/credstore" else null;
    encryptedCredstore =
      if anyCredential && credstoreEncrypted then
        {
          dir = "/run/credstore.encrypted";
          withKey = encryptWith;
        }
      else
        null;
    templates = map templateEntry (attrNames templates);
  };
in
if problems == [ ] then
  manifest
else
  throw "agenixd: refusing this age configuration:\n- ${concatStringsSep "\n- " problems}"
