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
#   encryptedCredstore  the directory sealed credentials are published in
#                    ("/run/credstore.encrypted", age.credstore.encrypted), or null (default)
#   credentials      list of the credential names agenixd publishes (default [ ])
#   loadCredentialsEncrypted  attrset like loadCredentials, of LoadCredentialEncrypted= (default { })
#
# With sealed credentials, systemd's LoadCredential=<name> without a path searches the encrypted
# stores first (exec-credential.c, credential_search_path with CREDENTIAL_SEARCH_PATH_ALL) and
# would hand the unit the base64 blob undecrypted, or (older systemd) nothing; without them,
# LoadCredentialEncrypted=<name> finds the plaintext in /run/credstore and fails to decrypt it,
# failing the unit. Both are reported, as is LoadCredentialEncrypted= of the encrypted store as a
# directory (symlinks skipped, as above).
#
# Result: a list of messages, one per such setting.
{
  credstore,
  loadCredentials,
  encryptedCredstore ? null,
  credentials ? [ ],
  loadCredentialsEncrypted ? { },
}:
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
  loadsEncryptedStore = setting: sourceOf setting != null && normalize (sourceOf setting) == normalize encryptedCredstore;

  # The credential name a setting looks up in the stores: "ID" alone, or "ID:NAME" with a relative NAME.
  byName =
    setting:
    let
      source = sourceOf setting;
    in
    if source == null then setting else if builtins.substring 0 1 source == "/" then null else source;
  namesOurs = setting: byName setting != null && builtins.elem (byName setting) credentials;

  settingsOf = attrs: unit: let value = attrs.${unit} or [ ]; in if isList value then value else [ value ];

  encryptedProblems =
    unit:
    map (
      setting:
      "systemd.services.${unit}.serviceConfig.LoadCredentialEncrypted has \"${setting}\": a directory as the source makes a credential of each regular file in it, but agenixd publishes its sealed credentials in ${encryptedCredstore} as symlinks, which systemd skips, so ${unit}.service would get none of them. Load each by name (LoadCredentialEncrypted = [ \"api-token\" ])."
    ) (filter loadsEncryptedStore (settingsOf loadCredentialsEncrypted unit))
    ++ map (
      setting:
      "systemd.services.${unit}.serviceConfig.LoadCredential has \"${setting}\", but with age.credstore.encrypted agenixd publishes ${byName setting} only sealed, in ${encryptedCredstore}: LoadCredential= would not decrypt it. Use LoadCredentialEncrypted = [ \"${byName setting}\" ]."
    ) (filter namesOurs (settingsOf loadCredentials unit));

  plainProblems =
    unit:
    map (
      setting:
      "systemd.services.${unit}.serviceConfig.LoadCredentialEncrypted has \"${setting}\", but agenixd publishes ${byName setting} in plaintext in ${credstore}, which systemd would fail to decrypt, failing ${unit}.service. Use LoadCredential = [ \"${byName setting}\" ], or set age.credstore.encrypted = true."
    ) (filter namesOurs (settingsOf loadCredentialsEncrypted unit));

  problemsOf =
    unit:
    map (
      setting:
      "systemd.services.${unit}.serviceConfig.LoadCredential has \"${setting}\": a directory as the source makes a credential of each regular file and socket in it, but agenixd publishes its credentials in ${credstore} as symlinks, which systemd skips, so ${unit}.service would get none of them. Load each credential by name (LoadCredential = [ \"api-token\" ]) or by its own path (LoadCredential = [ \"api-token:${credstore}/api-token\" ])."
    ) (filter loadsCredstore (settingsOf loadCredentials unit));
in
(if credstore == null then [ ] else concatLists (map problemsOf (attrNames loadCredentials)) ++ concatLists (map plainProblems (attrNames loadCredentialsEncrypted)))
++ (if encryptedCredstore == null then [ ] else concatLists (map encryptedProblems (attrNames (loadCredentials // loadCredentialsEncrypted))))
