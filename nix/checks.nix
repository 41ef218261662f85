# What agenixd refuses at evaluation time, because agenix would accept it and then break at
# activation. Builtins only (no nixpkgs), so CI can evaluate it with plain nix-instantiate.
#
# Arguments: the plain values of the `age.*` options
#   secrets           attrset: attribute name -> { name, file, path, mode, owner, group, symlink,
#                     restartUnits ? [ ], reloadUnits ? [ ], credential ? false }
#   templates         attrset (default { }): attribute name -> { name, content ? null, file ? null,
#                     path, mode, owner, group, symlink, restartUnits ? [ ], reloadUnits ? [ ],
#                     fileOutsideStore ? false }
#   identityPaths     list of absolute paths (strings or path values)
#   secretsDir        string or path, e.g. "/run/agenix"
#   secretsMountPoint string, e.g. "/run/agenix.d"
#   keepGenerations   integer
#
# Result: a list of messages, one per problem, empty when the configuration is sound.
# module.nix turns each into an assertion; manifest.nix throws them all.
{
  secrets,
  templates ? { },
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
    hashString
    head
    isList
    isInt
    isPath
    isString
    length
    listToAttrs
    match
    readFile
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

  # Templates are rendered into the generation's `rendered` directory: secretsDir/rendered/<name>.
  renderedDir = "${normalDir}/rendered";
  hasTemplates = templates != { };

  components = s: filter isString (split "/" s);
  isAbsolute = s: substring 0 1 s == "/";
  hasTrailingSlash = s: match ".+/" s != null;
  hasWhitespace = s: match ".*[[:space:]].*" s != null;
  isUnder = parent: s: substring 0 (stringLength parent + 1) s == "${parent}/";
  # What agenixd does to a path before using it: "/a//b/./c/" is "/a/b/c".
  normalize = s: "/" + concatStringsSep "/" (filter (c: c != "" && c != ".") (components s));

  optional = cond: message: if cond then [ message ] else [ ];

  # What the problems below say about one entry: `age.secrets."db"` and its noun.
  secretEntry = attr: {
    option = "age.secrets.\"${attr}\"";
    noun = "secret";
    within = "age.secretsDir";
    inGeneration = "${normalDir}/${secrets.${attr}.name}";
    value = secrets.${attr};
  };
  templateEntry = attr: {
    option = "age.templates.\"${attr}\"";
    noun = "template";
    within = "the \"rendered\" directory of age.secretsDir";
    inGeneration = "${renderedDir}/${templates.${attr}.name}";
    value = templates.${attr};
  };

  # A name becomes a file below secretsDir and below each generation: a relative path with no
  # `..` (which would escape the generation) and no empty or `.` component.
  nameProblems =
    entry:
    let
      option = "${entry.option}.name";
      name = entry.value.name;
    in
    if name == "" then
      [ "${option} is empty." ]
    else if match ".*\n.*" name != null then
      [ "${option} contains a newline." ]
    else if isAbsolute name then
      [ "${option} = \"${name}\" must be relative to ${entry.within}, not an absolute path." ]
    else if elem ".." (components name) then
      [ "${option} = \"${name}\" contains a `..` component, which would place the ${entry.noun} outside ${entry.within}." ]
    else if elem "" (components name) || elem "." (components name) then
      [ "${option} = \"${name}\" must be a normalized relative path (no empty or `.` components)." ]
    # The runtime renders the templates into the generation's `rendered` directory.
    else if entry.noun == "secret" && hasTemplates && head (components name) == "rendered" then
      [ "${option} = \"${name}\" is in the generation's \"rendered\" directory, which belongs to the templates of age.templates (${renderedDir}/<template name>). Rename the secret." ]
    else
      [ ];

  pathProblems =
    entry:
    let
      option = "${entry.option}.path";
      path = toString entry.value.path;
    in
    if !isAbsolute path then
      [ "${option} = \"${path}\" must be an absolute path." ]
    else if elem ".." (components path) then
      [ "${option} = \"${path}\" contains a `..` component." ]
    else if path == mountPoint || isUnder mountPoint path then
      [ "${option} = \"${path}\" is inside age.secretsMountPoint (${mountPoint}), where only agenixd's generations live." ]
    else if normalize path == normalDir || isUnder (normalize path) normalDir then
      [ "${option} = \"${path}\" is age.secretsDir (${dir}) or contains it: the ${entry.noun} would replace the link to the generations." ]
    else if isUnder (normalize path) normalMount then
      [ "${option} = \"${path}\" contains age.secretsMountPoint (${mountPoint}): the ${entry.noun} would replace the generations." ]
    else
      [ ];

  # What systemctl takes as one unit name (src/units.ts isUnitName): letters, digits and
  # `:_.@\-`, not `-` first (systemctl would read an option), at most 255 characters. The
  # backslash (systemd's escapes, `\x2d`) is swapped for `_` before matching rather than written
  # in the bracket expression, where regex engines disagree about it.
  unitProblem =
    entry: option: unit:
    let
      prefix = "${entry.option}.${option}:";
    in
    if stringLength unit > 255 then
      [ "${prefix} \"${substring 0 40 unit}...\" is ${toString (stringLength unit)} characters long; a systemd unit name has at most 255." ]
    else if match "[A-Za-z0-9:_.@][A-Za-z0-9:_.@-]*" (replaceStrings [ "\\" ] [ "_" ] unit) == null then
      [ "${prefix} \"${unit}\" is not a systemd unit name (such as \"nginx.service\": letters, digits and \":_.@\\-\", not starting with \"-\")." ]
    else
      [ ];

  unitProblems = entry: option: concatLists (map (unitProblem entry option) (entry.value.${option} or [ ]));

  # What secrets and templates share: a file in the generation, maybe installed elsewhere too.
  fileProblems =
    entry:
    let
      value = entry.value;
      path = toString value.path;
    in
    nameProblems entry
    ++ pathProblems entry
    # What chmod(1) accepts, as in agenix: octal, or symbolic clauses ("u=rw,g=r").
    ++ optional (match "[0-7]{1,4}|[ugoa]*([-+=]([ugo]|[rwxXst]*))+(,[ugoa]*([-+=]([ugo]|[rwxXst]*))+)*" value.mode == null)
      "${entry.option}.mode = \"${value.mode}\" is not a chmod mode such as \"0400\" or \"u=r,g=r\"."
    ++ optional (value.owner == "") "${entry.option}.owner is empty."
    ++ optional (value.group == "") "${entry.option}.group is empty."
    # agenix #291: a copy written below secretsDir lands inside the current generation, which the
    # next activation replaces, so the file silently disappears.
    ++ optional (!value.symlink && isUnder dir path)
      "${entry.option}: symlink = false needs a path outside age.secretsDir (${dir}), but path is \"${path}\"; a copy written there is lost when the next generation replaces it (agenix #291). Set a path elsewhere or keep symlink = true."
    ++ unitProblems entry "restartUnits"
    ++ unitProblems entry "reloadUnits";

  # systemd's credential_name_valid(): a valid file name (not empty, not `.` or `..`, no `/`, at
  # most 255 bytes) and a valid fd name (printable ASCII only, no `:`). LoadCredential=<name> looks
  # the name up in /run/credstore, so a secret published there needs such a name. A `/` in the
  # secret's name becomes `_` (`db/password` is the credential `db_password`), as systemd names the
  # files of a directory given to LoadCredential= (src/credstore.ts does the same).
  credentialId = name: builtins.replaceStrings [ "/" ] [ "_" ] name;
  credentialProblems =
    entry:
    let
      name = entry.value.name;
      id = credentialId name;
    in
    optional
      (
        (entry.value.credential or false)
        && nameProblems entry == [ ]
        && (stringLength id > 255 || match "[ -.0-9;-~]+" id == null || id == "." || id == "..")
      )
      "${entry.option}: credential = true (the default when age.credstore.enable is set), but its name \"${name}\" does not make a systemd credential name (\"${id}\", with / as _), which LoadCredential=<name> needs: 1 to 255 printable ASCII characters, without \":\". Set credential = false for this secret, or give it such a name.";

  # Two credentials with the same credential name (`db/password` and `db_password`): one would
  # replace the other in /run/credstore.
  credentialClashes =
    let
      credentials = filter (attr: secrets.${attr}.credential or false) (attrNames secrets);
      step =
        acc: attr:
        let
          id = credentialId secrets.${attr}.name;
        in
        if acc.seen ? ${id} then
          acc
          // {
            problems = acc.problems ++ [
              "age.secrets.\"${acc.seen.${id}}\" and age.secrets.\"${attr}\" are both published as the credential \"${id}\" (a / in a name becomes _); set credential = false on one, or rename it."
            ];
          }
        else
          acc // { seen = acc.seen // { ${id} = attr; }; };
    in
    (builtins.foldl' step {
      seen = { };
      problems = [ ];
    } credentials).problems;

  secretProblems = attr: fileProblems (secretEntry attr) ++ credentialProblems (secretEntry attr);

  # Placeholders written into a template (module.nix: config.age.placeholder.<attr>). One that no
  # declared secret has would reach the rendered file as it is, so it is refused here; reading
  # config.age.placeholder.<undeclared> fails by itself, this catches one written out by hand or
  # left over from a removed secret.
  placeholderHashes = listToAttrs (
    map (attr: {
      name = hashString "sha256" attr;
      value = attr;
    }) (attrNames secrets)
  );
  unknownPlaceholders =
    text:
    map (hash: "<agenixd:${hash}:placeholder>") (
      filter (hash: !(placeholderHashes ? ${hash})) (
        map head (filter isList (split "<agenixd:([0-9a-f]{64}):placeholder>" text))
      )
    );

  inStore = s: substring 0 (stringLength builtins.storeDir + 1) s == "${builtins.storeDir}/";

  templateProblems =
    attr:
    let
      entry = templateEntry attr;
      template = entry.value;
      content = template.content or null;
      file = template.file or null;
      placeholderProblems =
        option: text:
        map (
          p: "${entry.option}.${option} contains the placeholder ${p}, which belongs to no secret of age.secrets. Write placeholders as \${config.age.placeholder.<secret>} of a declared secret."
        ) (unknownPlaceholders text);
    in
    (
      if content != null && file != null then
        [ "${entry.option}: set either content or file, not both." ]
      else if content == null && file == null then
        [ "${entry.option}: set content (the template's text) or file (a file holding it)." ]
      else
        [ ]
    )
    ++ (if content != null then placeholderProblems "content" content else [ ])
    # A file given as a path value is read where it is (no build needed); one built by a
    # derivation is not read at evaluation.
    ++ (if content == null && isPath file then placeholderProblems "file" (readFile file) else [ ])
    # A file outside the store is read as root at every activation: whoever can change it could
    # add any secret's placeholder. Only an explicit opt-in (template-access.nix) lets it through.
    ++ (
      if content == null && file != null && !(isPath file) && !(inStore (toString file)) && !(template.fileOutsideStore or false) then
        [ "${entry.option}.file = \"${toString file}\" is not in the Nix store: agenixd would read it as root at every activation, and whoever can change it (or a directory above it) could add any secret's placeholder and receive that secret. Give a path value or a derivation (copied to the store), or set ${entry.option}.fileOutsideStore = true if only root can change it (agenixd checks that at activation)." ]
      else
        [ ]
    )
    ++ fileProblems entry;

  # Every file a secret or template puts in place ("leaf"): its file in the generation, seen as
  # secretsDir/name (secretsDir/rendered/name for a template), and its `path` when that is
  # elsewhere (a symlink, or a copy). Two leaves at one place, or a leaf where another needs a
  # directory, mean one file replaces another or an activation fails, so both are named. Leaves of
  # a name or path refused above are left out, so one mistake gives one message.
  leavesOf =
    entry:
    let
      path = normalize (toString entry.value.path);
    in
    optional (nameProblems entry == [ ]) {
      inherit entry;
      at = entry.inGeneration;
      role = "name";
    }
    ++ optional (path != entry.inGeneration && pathProblems entry == [ ]) {
      inherit entry;
      at = path;
      role = "path";
    };

  describe =
    leaf:
    if leaf.role == "name" then
      "${leaf.entry.option} (name \"${leaf.entry.value.name}\", ${
        if leaf.entry.noun == "template" then "rendered" else "installed"
      } as ${leaf.at})"
    else
      "${leaf.entry.option}.path \"${leaf.at}\"";

  # Groups with builtins.groupBy (linear) rather than comparing every pair: 1000 secrets stay fast.
  leaves = concatLists (map leavesOf (map secretEntry (attrNames secrets) ++ map templateEntry (attrNames templates)));
  byPlace = groupBy (leaf: leaf.at) leaves;

  samePlace =
    group:
    let
      first = head group;
    in
    map (
      other:
      if first.role == other.role then
        "${first.entry.option} and ${other.entry.option} have the same ${first.role} \"${
          if first.role == "name" then first.entry.value.name else first.at
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
++ credentialClashes
++ concatLists (map templateProblems (attrNames templates))
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
