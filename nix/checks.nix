# What agenixd refuses at evaluation time, because agenix would accept it and then break at
# activation. Builtins only (no nixpkgs), so CI can evaluate it with plain nix-instantiate.
#
# Arguments: the plain values of the `age.*` options
#   secrets           attrset: attribute name -> { name, file, path, mode, owner, group, symlink }
#   identityPaths     list of absolute paths (strings or path values)
#   secretsDir        string or path, e.g. "/run/agenix"
#   secretsMountPoint string, e.g. "/run/agenix.d"
#   keepGenerations   integer
#
# Result: a list of messages, one per problem, empty when the configuration is sound.
# module.nix turns each into an assertion; manifest.nix throws them all.
{
  secrets,
  identityPaths,
  secretsDir,
  secretsMountPoint,
  keepGenerations,
  ...
}:
let
  inherit (builtins)
    attrNames
    concatLists
    elem
    filter
    isInt
    isString
    match
    split
    stringLength
    substring
    toString
    ;

  dir = toString secretsDir;
  mountPoint = toString secretsMountPoint;

  components = s: filter isString (split "/" s);
  isAbsolute = s: substring 0 1 s == "/";
  hasTrailingSlash = s: match ".+/" s != null;
  hasWhitespace = s: match ".*[[:space:]].*" s != null;
  isUnder = parent: s: substring 0 (stringLength parent + 1) s == "${parent}/";

  optional = cond: message: if cond then [ message ] else [ ];

  # A name becomes a file below secretsDir and below each generation: a relative path with no
  # `..` (which would escape the generation) and no empty or `.` component.
  nameProblems =
    attr: name:
    let
      option = "age.secrets.\"${attr}\".name";
    in
    if name == "" then
      [ "${option} is empty." ]
    else if match ".*\n.*" name != null then
      [ "${option} contains a newline." ]
    else if isAbsolute name then
      [ "${option} = \"${name}\" must be relative to age.secretsDir, not an absolute path." ]
    else if elem ".." (components name) then
      [ "${option} = \"${name}\" contains a `..` component, which would place the secret outside age.secretsDir." ]
    else if elem "" (components name) || elem "." (components name) then
      [ "${option} = \"${name}\" must be a normalized relative path (no empty or `.` components)." ]
    else
      [ ];

  pathProblems =
    attr: path:
    let
      option = "age.secrets.\"${attr}\".path";
    in
    if !isAbsolute path then
      [ "${option} = \"${path}\" must be an absolute path." ]
    else if elem ".." (components path) then
      [ "${option} = \"${path}\" contains a `..` component." ]
    else if path == mountPoint || isUnder mountPoint path then
      [ "${option} = \"${path}\" is inside age.secretsMountPoint (${mountPoint}), where only agenixd's generations live." ]
    else
      [ ];

  secretProblems =
    attr:
    let
      secret = secrets.${attr};
      path = toString secret.path;
    in
    nameProblems attr secret.name
    ++ pathProblems attr path
    # What chmod(1) accepts, as in agenix: octal, or symbolic clauses ("u=rw,g=r").
    ++ optional (match "[0-7]{1,4}|[ugoa]*([-+=]([ugo]|[rwxXst]*))+(,[ugoa]*([-+=]([ugo]|[rwxXst]*))+)*" secret.mode == null)
      "age.secrets.\"${attr}\".mode = \"${secret.mode}\" is not a chmod mode such as \"0400\" or \"u=r,g=r\"."
    ++ optional (secret.owner == "") "age.secrets.\"${attr}\".owner is empty."
    ++ optional (secret.group == "") "age.secrets.\"${attr}\".group is empty."
    # agenix #291: a copy written below secretsDir lands inside the current generation, which the
    # next activation replaces, so the file silently disappears.
    ++ optional (!secret.symlink && (path == dir || isUnder dir path))
      "age.secrets.\"${attr}\": symlink = false needs a path outside age.secretsDir (${dir}), but path is \"${path}\"; a copy written there is lost when the next generation replaces it (agenix #291). Set a path elsewhere or keep symlink = true.";

  # Two secrets installed at the same place: the later one would silently win.
  duplicates =
    what: keyOf: attrs:
    let
      step =
        acc: attr:
        let
          key = keyOf attr;
        in
        if acc.seen ? ${key} then
          acc
          // {
            problems =
              acc.problems
              ++ [ "age.secrets.\"${acc.seen.${key}}\" and age.secrets.\"${attr}\" have the same ${what} \"${key}\"." ];
          }
        else
          acc // { seen = acc.seen // { ${key} = attr; }; };
    in
    (builtins.foldl' step {
      seen = { };
      problems = [ ];
    } attrs).problems;

  attrs = attrNames secrets;
  symlinked = filter (attr: secrets.${attr}.symlink) attrs;

  identityStrings = map toString identityPaths;
in
concatLists (map secretProblems attrs)
++ duplicates "path" (attr: toString secrets.${attr}.path) attrs
++ duplicates "name" (attr: secrets.${attr}.name) symlinked
++ optional (attrs != [ ] && identityPaths == [ ]) "age.identityPaths must be set, for example by enabling openssh."
++ concatLists (
  map (
    p:
    optional (!isAbsolute p) "age.identityPaths entry \"${p}\" must be an absolute path."
    ++ optional (hasWhitespace p) "age.identityPaths entry \"${p}\" contains whitespace, which systemd's RequiresMountsFor= cannot express."
  ) identityStrings
)
++ optional (!isAbsolute dir || hasTrailingSlash dir)
  "age.secretsDir = \"${dir}\" must be an absolute path without a trailing slash."
++ optional (match "[ \t\n]*" mountPoint != null || hasTrailingSlash mountPoint || !isAbsolute mountPoint)
  "age.secretsMountPoint = \"${mountPoint}\" must be a non-empty absolute path without a trailing slash."
++ optional (dir == mountPoint || isUnder mountPoint dir || isUnder dir mountPoint)
  "age.secretsDir (${dir}) and age.secretsMountPoint (${mountPoint}) must not contain one another: the symlink and the generations it points to need separate places."
++ optional (!isInt keepGenerations || keepGenerations < 1)
  "age.keepGenerations must be a positive integer (1 keeps only the current generation), not ${toString keepGenerations}."
