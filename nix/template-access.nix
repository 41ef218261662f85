# Who may read what a template puts together (issue 23), imported by ./module.nix:
#   age.templates.<name>.fileOutsideStore  opt-in for a template `file` that is not in the store
#                                          (refused otherwise, by ./checks.nix)
#   age.templates.<name>.allowWiderAccess  silences the warning below
# and the warning itself: a template readable by someone who cannot read a secret it embeds
# hands that secret over. The runtime side (a template file must be root's alone) is in
# src/templates.ts and src/secure-fs.ts; docs/templates.md says both.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  inherit (builtins)
    attrNames
    elem
    filter
    foldl'
    hashString
    head
    isList
    isPath
    listToAttrs
    match
    readFile
    split
    stringLength
    substring
    ;

  cfg = config.age;

  # Placeholder hash -> secret attribute (the formula of docs/manifest.md).
  secretOfHash = listToAttrs (
    map (attr: {
      name = hashString "sha256" attr;
      value = attr;
    }) (attrNames cfg.secrets)
  );

  # The secrets a template's text embeds, when the text is known at evaluation: `content`, or a
  # `file` given as a path value. A file built by a derivation is not read (no build at evaluation).
  embedded =
    template:
    let
      text =
        if template.content != null then
          template.content
        else if isPath template.file then
          readFile template.file
        else
          "";
    in
    lib.unique (
      filter (a: a != null) (
        map (m: secretOfHash.${head m} or null) (filter isList (split "<agenixd:([0-9a-f]{64}):placeholder>" text))
      )
    );

  # An octal mode ("0400", "440") as a number; null for a symbolic one, which is not compared.
  octal =
    mode:
    if match "[0-7]{1,4}" mode != null then
      foldl' (acc: i: acc * 8 + lib.toInt (substring i 1 mode)) 0 (lib.range 0 (stringLength mode - 1))
    else
      null;
  has = mode: bit: lib.mod (mode / bit) 2 == 1;
  UR = 256;
  GR = 32;
  OR = 4;

  isRoot = user: user == "root" || user == "0";
  inGroup =
    user: group:
    let
      u = config.users.users.${user} or { };
    in
    (u.group or null) == group || elem group (u.extraGroups or [ ]);

  describe = what: x: "${what} (owner ${x.owner}, group ${x.group}, mode ${x.mode})";

  # Who may read the template and not the secret, in words; [] when the template is no wider.
  widerReaders =
    template: secret:
    let
      t = octal template.mode;
      s = octal secret.mode;
      secretByUser = user: isRoot user || has s OR || (has s UR && user == secret.owner) || (has s GR && inGroup user secret.group);
      secretByGroup = group: has s OR || (has s GR && group == secret.group);
    in
    if t == null || s == null then
      [ ]
    else
      lib.optional (has t UR && !secretByUser template.owner) "user ${template.owner}"
      ++ lib.optional (has t GR && !secretByGroup template.group) "group ${template.group}"
      ++ lib.optional (has t OR && !has s OR) "every user";

  warningsOf =
    attr: template:
    if template.allowWiderAccess then
      [ ]
    else
      lib.concatMap (
        secretAttr:
        let
          secret = cfg.secrets.${secretAttr};
          who = widerReaders template secret;
        in
        lib.optional (who != [ ])
          "${describe "age.templates.\"${attr}\"" template} embeds ${describe "age.secrets.\"${secretAttr}\"" secret}: ${lib.concatStringsSep ", " who} can read the rendered file but not the secret. Give the template no wider access than its secrets, or set age.templates.\"${attr}\".allowWiderAccess = true if that is meant."
      ) (embedded template);
in
{
  # Declared here too: the module system merges these into the submodule of ./module.nix.
  options.age.templates = mkOption {
    type = types.attrsOf (
      types.submodule {
        options = {
          fileOutsideStore = mkOption {
            type = types.bool;
            default = false;
            example = true;
            description = ''
              Whether `file` may be a path outside the Nix store (a string such as
              `"/etc/wireguard/wg0.conf.tmpl"`), read at every activation. Refused at evaluation
              unless set: whoever can change such a file could add any secret's placeholder (they
              are public) and receive that secret in the rendered file. Even when set, agenixd
              reads the file only if it and every directory above it belong to root and no one
              else may write them (not following a symlink another user could have made); the
              template fails otherwise, keeping its previous rendering.
            '';
          };
          allowWiderAccess = mkOption {
            type = types.bool;
            default = false;
            example = true;
            description = ''
              Whether the rendered file may be readable by someone who cannot read a secret it
              embeds (a root-only secret in a 0444 file, or in a file owned by another user).
              Without it such a template gives an evaluation warning naming the template, the
              secret and both owners and modes. Compared for octal modes and for the secrets
              whose placeholders are visible at evaluation (`content`, or `file` as a path value).
            '';
          };
        };
      }
    );
  };

  config = lib.mkIf (cfg.templates != { }) {
    warnings = lib.concatLists (lib.mapAttrsToList warningsOf cfg.templates);
  };
}
