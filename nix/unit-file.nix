# Renders one service, given as NixOS `systemd.services.<name>` settings, into the unit file text
# NixOS would write for it (nixos/lib/systemd-lib.nix: unitConfig and serviceToUnit). Builtins
# only. Used by ./unit.nix and by the boot harness, so the harness runs the unit the module
# declares, and switch-to-configuration compares the same text NixOS would give it.
#
# Argument: { description, wantedBy, requiredBy, aliases, wants, requires, partOf, before, after,
#             conflicts, unitConfig, serviceConfig, environment, restartTriggers, restartIfChanged,
#             reloadIfChanged, stopIfChanged } (all optional).
#
# As NixOS does: [Unit] holds unitConfig with the dependency lists (each on one line,
# space-separated) and the description, keys sorted; a list in unitConfig or serviceConfig is one
# line per element; booleans are true/false; [Service] starts with one quoted Environment= line
# per variable, then X-ReloadIfChanged=true or X-RestartIfChanged=false, X-StopIfChanged=false,
# then serviceConfig; [Install] holds only WantedBy (NixOS makes the .wants, .requires and alias
# links itself). Unlike NixOS, which writes restartTriggers into a store file and names that
# file, X-Restart-Triggers= lists the triggers themselves.
service:
let
  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    isBool
    isList
    listToAttrs
    toJSON
    ;

  get = name: service.${name} or [ ];

  option = v: if isBool v then (if v then "true" else "false") else toString v;

  # nixpkgs' attrsToSection: attributes in name order, a list as one line per element.
  section =
    attrs:
    concatStringsSep "" (
      map (
        name:
        let
          v = attrs.${name};
        in
        concatStringsSep "" (map (x: "${name}=${option x}\n") (if isList v then v else [ v ]))
      ) (attrNames attrs)
    );

  nonEmpty =
    pairs:
    listToAttrs (
      map (p: {
        name = p.key;
        value = concatStringsSep " " p.value;
      }) (filter (p: p.value != [ ]) pairs)
    );

  unitAttrs =
    (service.unitConfig or { })
    // nonEmpty [
      { key = "Requires"; value = get "requires"; }
      { key = "Wants"; value = get "wants"; }
      { key = "After"; value = get "after"; }
      { key = "Before"; value = get "before"; }
      { key = "PartOf"; value = get "partOf"; }
      { key = "Conflicts"; value = get "conflicts"; }
      { key = "X-Restart-Triggers"; value = get "restartTriggers"; }
    ]
    // (if (service.description or "") != "" then { Description = service.description; } else { });

  environment = service.environment or { };

  environmentLines = concatStringsSep "" (
    map (n: "Environment=${toJSON "${n}=${environment.${n}}"}\n") (
      filter (n: environment.${n} != null) (attrNames environment)
    )
  );

  switchLines =
    (
      if service.reloadIfChanged or false then
        "X-ReloadIfChanged=true\n"
      else if !(service.restartIfChanged or true) then
        "X-RestartIfChanged=false\n"
      else
        ""
    )
    + (if !(service.stopIfChanged or true) then "X-StopIfChanged=false\n" else "");

  wantedBy = get "wantedBy";
in
"[Unit]\n"
+ section unitAttrs
+ "\n[Service]\n"
+ environmentLines
+ switchLines
+ section (service.serviceConfig or { })
+ (if wantedBy == [ ] then "" else "\n[Install]\nWantedBy=${concatStringsSep " " wantedBy}\n")
