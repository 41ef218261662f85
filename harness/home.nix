# What a scenario's Home Manager user runs, from the module's own pure functions
# (../nix/home-manifest.nix and ../nix/home-service.nix), so the harness starts exactly the
# manifest and user unit nix/home-manager.nix declares. Evaluated like ./system.nix.
#
# Argument `json`: { user, uid (or null: paths keep the literal ${XDG_RUNTIME_DIR}), agenixd,
#   systemctl, identityPaths, configurations: { <name>: {
#     secrets: { <attr>: { file, name?, path?, mode?, symlink?, restartUnits?, reloadUnits?, trim? } },
#     templates?: { <attr>: { content, name?, path?, mode?, symlink?, restartUnits?, reloadUnits? } } } } }
#   A template's `content` names secrets as `{{attr}}`, as in ./system.nix.
# Result: { <configuration>: { manifestPath, manifestJSON, storeFiles, unitFile } }: `unitFile` is
#   agenixd.service as Home Manager writes a user unit (its toSystemdIni: sections and keys
#   sorted, a list one line per element, booleans true/false).
#
# The options' defaults are nix/home-manager.nix's; the harness has no nixpkgs lib to evaluate it.
{ json }:
let
  machine = builtins.fromJSON json;
  inherit (builtins)
    attrNames
    concatMap
    concatStringsSep
    isBool
    isList
    mapAttrs
    ;

  runtimeDir = if machine.uid == null then "\${XDG_RUNTIME_DIR}" else "/run/user/${toString machine.uid}";
  secretsDir = "${runtimeDir}/agenix";
  secretsMountPoint = "${runtimeDir}/agenix.d";
  placeholderOf = attr: "<agenixd:${builtins.hashString "sha256" attr}:placeholder>";

  fileDefaults = attr: s: {
    name = s.name or attr;
    mode = s.mode or "0400";
    symlink = s.symlink or true;
    restartUnits = s.restartUnits or [ ];
    reloadUnits = s.reloadUnits or [ ];
  };

  configuration =
    cfg:
    let
      secrets = mapAttrs (
        attr: s:
        let
          common = fileDefaults attr s;
        in
        common
        // {
          inherit (s) file;
          path = s.path or "${secretsDir}/${common.name}";
          trim = s.trim or false;
        }
      ) cfg.secrets;
      placeholders = mapAttrs (attr: _: placeholderOf attr) secrets;
      templates = mapAttrs (
        attr: t:
        let
          common = fileDefaults attr t;
        in
        common
        // {
          content = import ./placeholders.nix placeholders attr t.content;
          file = null;
          path = t.path or "${secretsDir}/rendered/${common.name}";
        }
      ) (cfg.templates or { });
      manifestJSON = import ../nix/home-manifest.nix {
        inherit secrets templates secretsDir secretsMountPoint;
        inherit (machine) user identityPaths;
        keepGenerations = 1;
      };
      manifest = builtins.fromJSON (builtins.unsafeDiscardStringContext manifestJSON);
      manifestPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" manifestJSON)}-agenixd-home-manifest.json";
      triggered = concatMap (x: x.restartUnits ++ x.reloadUnits) (builtins.attrValues secrets ++ builtins.attrValues templates);
      unit = import ../nix/home-service.nix {
        inherit (machine) agenixd systemctl;
        manifest = manifestPath;
        triggered = builtins.foldl' (acc: u: if builtins.elem u acc then acc else acc ++ [ u ]) [ ] triggered;
      };
    in
    {
      inherit manifestJSON manifestPath;
      storeFiles = builtins.listToAttrs (
        map (t: {
          name = builtins.unsafeDiscardStringContext t.file;
          value = templates.${builtins.head (builtins.filter (a: templates.${a}.name == t.name) (attrNames templates))}.content;
        }) manifest.templates
      );
      unitFile = toSystemdIni unit;
    };

  # Home Manager's toSystemdIni (modules/systemd.nix): lib.generators.toINI with
  # listsAsDuplicateKeys, booleans as true/false.
  toSystemdIni =
    sections:
    concatStringsSep "\n" (
      map (
        section:
        let
          values = sections.${section};
          line = key: value: "${key}=${if isBool value then (if value then "true" else "false") else toString value}\n";
        in
        "[${section}]\n"
        + concatStringsSep "" (
          concatMap (key: map (line key) (if isList values.${key} then values.${key} else [ values.${key} ])) (attrNames values)
        )
      ) (attrNames sections)
    );
in
mapAttrs (_: configuration) machine.configurations
