# What agenixd refuses at evaluation time, because agenix would accept it and then break at
# activation. Builtins only (no nixpkgs), so CI can evaluate it with plain nix-instantiate.
#
# Arguments: the plain values of the `age.*` options
#   secrets           attrset: attribute name -> { name, file, path, mode, owner, group, symlink,
#                     restartUnits ? [ ], reloadUnits ? [ ] }
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
    attrValues
    concatLists
    concatStringsSep
    elem
    elemAt
    filter
    foldl'
    genList
    groupBy
    isInt
    isString
    length
    match
    replaceStrings
    split
    stringLength
    substring
    tail
    toString
    ;

  dir = toString secretsDir;
  mountPoint = toString secretsMountPoint;
  normalDir = normalize dir;
  normalMount = normalize mountPoint;

  components = s: filter isString (split "/" s);
  isAbsolute = s: substring 0 1 s == "/";
  hasTrailingSlash = s: match ".+/" s != null;
  hasWhitespace = s: match ".*[[:space:]].*" s != null;
  isUnder = parent: s: substring 0 (stringLength parent + 1) s == "${parent}/";
  # What agenixd does to a path before using it: "/a//b/./c/" is "/a/b/c".
  normalize = s: "/" + concatStringsSep "/" (filter (c: c != "" && c != ".") (components s));

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
    else if normalize path == normalDir || isUnder (normalize path) normalDir then
      [ "${option} = \"${path}\" is age.secretsDir (${dir}) or contains it: the secret would replace the link to the generations." ]
    else if isUnder (normalize path) normalMount then
      [ "${option} = \"${path}\" contains age.secretsMountPoint (${mountPoint}): the secret would replace the generations." ]
    else
      [ ];

  # What systemctl takes as one unit name (src/units.ts isUnitName): letters, digits and
  # `:_.@\-`, not `-` first (systemctl would read an option), at most 255 characters. The
  # backslash (systemd's escapes, `\x2d`) is swapped for `_` before matching rather than written
  # in the bracket expression, where regex engines disagree about it.
  unitProblem =
    attr: option: unit:
    let
      prefix = "age.secrets.\"${attr}\".${option}:";
    in
    if stringLength unit > 255 then
      [ "${prefix} \"${substring 0 40 unit}...\" is ${toString (stringLength unit)} characters long; a systemd unit name has at most 255." ]
    else if match "[A-Za-z0-9:_.@][A-Za-z0-9:_.@-]*" (replaceStrings [ "\\" ] [ "_" ] unit) == null then
      [ "${prefix} \"${unit}\" is not a systemd unit name (such as \"nginx.service\": letters, digits and \":_.@\\-\", not starting with \"-\")." ]
    else
      [ ];

  unitProblems = attr: option: units: concatLists (map (unitProblem attr option) units);

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
    ++ optional (!secret.symlink && isUnder dir path)
      "age.secrets.\"${attr}\": symlink = false needs a path outside age.secretsDir (${dir}), but path is \"${path}\"; a copy written there is lost when the next generation replaces it (agenix #291). Set a path elsewhere or keep symlink = true."
    ++ unitProblems attr "restartUnits" (secret.restartUnits or [ ])
    ++ unitProblems attr "reloadUnits" (secret.reloadUnits or [ ]);

  # Every file a secret puts in place ("leaf"): its file in the generation, seen as
  # secretsDir/name, and its `path` when that is elsewhere (a symlink, or a copy). Two leaves at
  # one place, or a leaf where another needs a directory, mean one file replaces another or an
  # activation fails, so both secrets are named. Leaves of a name or path refused above are left
  # out, so one mistake gives one message.
  leavesOf =
    attr:
    let
      secret = secrets.${attr};
      path = normalize (toString secret.path);
      inDir = "${normalDir}/${secret.name}";
    in
    optional (nameProblems attr secret.name == [ ]) {
      inherit attr;
      at = inDir;
      role = "name";
    }
    ++ optional (path != inDir && pathProblems attr (toString secret.path) == [ ]) {
      inherit attr;
      at = path;
      role = "path";
    };

  describe =
    leaf:
    if leaf.role == "name" then
      "age.secrets.\"${leaf.attr}\" (name \"${secrets.${leaf.attr}.name}\", installed as ${leaf.at})"
    else
      "age.secrets.\"${leaf.attr}\".path \"${leaf.at}\"";

  # Groups with builtins.groupBy (linear) rather than comparing every pair: 1000 secrets stay fast.
  leaves = concatLists (map leavesOf (attrNames secrets));
  byPlace = groupBy (leaf: leaf.at) leaves;

  samePlace =
    group:
    let
      first = builtins.head group;
    in
    map (
      other:
      if first.role == other.role then
        "age.secrets.\"${first.attr}\" and age.secrets.\"${other.attr}\" have the same ${first.role} \"${
          if first.role == "name" then secrets.${first.attr}.name else first.at
        }\": one would replace the other."
      else
        "${describe first} and ${describe other} are the same file: one would replace the other."
    ) (tail group);

  # "/a/b/c" -> [ "/a" "/a/b" ]
  ancestors =
    place:
    let
      prefixes = foldl' (acc: c: acc ++ [ "${if acc == [ ] then "" else elemAt acc (length acc - 1)}/${c}" ]) [ ] (
        filter (c: c != "") (components place)
      );
    in
    genList (elemAt prefixes) (length prefixes - 1);

  fileAboveAnother =
    leaf:
    concatLists (
      map (
        dirPlace:
        map (
          above: "${describe above} is a file where ${describe leaf} needs a directory: the two cannot both be installed."
        ) (byPlace.${dirPlace} or [ ])
      ) (ancestors leaf.at)
    );

  overlaps = concatLists (map samePlace (attrValues byPlace)) ++ concatLists (map fileAboveAnother leaves);

  attrs = attrNames secrets;

  identityStrings = map toString identityPaths;
in
concatLists (map secretProblems attrs)
++ overlaps
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
++ optional (normalDir == "/") "age.secretsDir must not be /: it becomes a symlink."
++ optional (match "[ \t\n]*" mountPoint != null || hasTrailingSlash mountPoint || !isAbsolute mountPoint)
  "age.secretsMountPoint = \"${mountPoint}\" must be a non-empty absolute path without a trailing slash."
++ optional (normalMount == "/") "age.secretsMountPoint must not be /: a ramfs is mounted there."
++ optional (dir == mountPoint || isUnder mountPoint dir || isUnder dir mountPoint)
  "age.secretsDir (${dir}) and age.secretsMountPoint (${mountPoint}) must not contain one another: the symlink and the generations it points to need separate places."
++ optional (!isInt keepGenerations || keepGenerations < 1)
  "age.keepGenerations must be a positive integer (1 keeps only the current generation), not ${toString keepGenerations}."
