# The units' LoadCredential= settings that agenixd's credstore cannot serve (issue 19), as
# assertion messages. Builtins only (no nixpkgs), so CI evaluates it with plain nix-instantiate.
#
# systemd reads `LoadCredential=ID:PATH` with a directory as PATH by walking it and keeping only
# regular files and sockets (exec-credential.c, load_cred_recurse_dir_cb); agenixd publishes its
# credentials in the credstore as symlinks into the ramfs (src/credstore.ts), so a unit that loads
# the credstore directory gets none of them, and nothing tells it. Loading one by name or by its
# own path follows the symlink and works.
#
# Arguments:
#   credstore        the directory agenixd publishes credentials in ("/run/credstore"), or null
#                    when no secret is a credential
#   loadCredentials  attrset: unit name (without .service) -> the unit's LoadCredential= value
#                    (a string or a list of strings, "ID" or "ID:PATH")
#
# Result: a list of messages, one per setting that loads the credstore as a directory.
{ credstore, loadCredentials }:
let
  inherit (builtins)
    attrNames
    concatLists
    filter
    isList
    match
    ;

  # "/run/credstore", "/run/credstore/", "/run/credstore/." and "/run//credstore" are one directory.
  normalize =
    p:
    let
      squeezed = builtins.replaceStrings [ "//" "/./" ] [ "/" "/" ] p;
      trimmed = match "(.*[^/])(/\\.?)+" squeezed;
    in
    if squeezed != p then normalize squeezed else if trimmed == null then p else builtins.head trimmed;

  sourceOf =
    setting:
    let
      parts = match "([^:]*):(.*)" setting;
    in
    if parts == null then null else builtins.elemAt parts 1;

  loadsCredstore = setting: sourceOf setting != null && normalize (sourceOf setting) == normalize credstore;

  problemsOf =
    unit:
    let
      value = loadCredentials.${unit};
      settings = if isList value then value else [ value ];
    in
    map (
      setting:
      "systemd.services.${unit}.serviceConfig.LoadCredential has \"${setting}\": a directory as the source makes a credential of each regular file and socket in it, but agenixd publishes its credentials in ${credstore} as symlinks, which systemd skips, so ${unit}.service would get none of them. Load each credential by name (LoadCredential = [ \"api-token\" ]) or by its own path (LoadCredential = [ \"api-token:${credstore}/api-token\" ])."
    ) (filter loadsCredstore settings);
in
if credstore == null then [ ] else concatLists (map problemsOf (attrNames loadCredentials))
