# Renders one service, given as NixOS `systemd.services.<name>` settings, into unit file text.
# Builtins only. Used by ./unit.nix so the boot harness runs the same unit the module declares.
#
# Argument: { description, wantedBy, requiredBy, aliases, wants, requires, partOf, before, after,
#             conflicts, unitConfig, serviceConfig, restartTriggers, stopIfChanged } (all but description
#             optional). Lists of dependencies are written space-separated on one line; a list in
#             unitConfig/serviceConfig the same way; booleans as true/false, like NixOS does.
# Result: the text of the unit file: [Unit], [Service] and, when the unit is wanted or required
#         by something, [Install] (NixOS links those directly; a plain systemd needs the section).
service:
let
  inherit (builtins) attrNames concatStringsSep filter isBool isList;

  value =
    v:
    if isBool v then
      (if v then "true" else "false")
    else if isList v then
      concatStringsSep " " (map toString v)
    else
      toString v;

  line = key: v: "${key}=${value v}\n";

  # Keys whose value would be empty are left out, as systemd would read `Key=` as a reset.
  lines =
    pairs:
    concatStringsSep "" (
      map (p: line p.key p.value) (filter (p: p.value != [ ] && p.value != "" && p.value != null) pairs)
    );

  settings = attrs: map (key: { inherit key; value = attrs.${key}; }) (attrNames attrs);

  get = name: service.${name} or [ ];

  unitSection = lines (
    [
      { key = "Description"; value = service.description; }
      { key = "Wants"; value = get "wants"; }
      { key = "Requires"; value = get "requires"; }
      { key = "PartOf"; value = get "partOf"; }
      { key = "Conflicts"; value = get "conflicts"; }
      { key = "After"; value = get "after"; }
      { key = "Before"; value = get "before"; }
    ]
    ++ settings (service.unitConfig or { })
    ++ [ { key = "X-Restart-Triggers"; value = get "restartTriggers"; } ]
  );

  serviceSection = lines (
    settings (service.serviceConfig or { })
    ++ [ { key = "X-StopIfChanged"; value = service.stopIfChanged or true; } ]
  );

  installSection = lines [
    { key = "WantedBy"; value = get "wantedBy"; }
    { key = "RequiredBy"; value = get "requiredBy"; }
    { key = "Alias"; value = get "aliases"; }
  ];
in
"[Unit]\n"
+ unitSection
+ "\n[Service]\n"
+ serviceSection
+ (if installSection == "" then "" else "\n[Install]\n" + installSection)
