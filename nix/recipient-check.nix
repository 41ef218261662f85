# The build-time recipient check: `system.checks` gets a derivation that runs `agenixd check`
# over every secret's .age file against the host's public keys, so a secret that was never
# re-encrypted for this (new or re-installed) host fails the build instead of its service at boot.
# Public keys only: an ssh-ed25519/ssh-rsa stanza names its recipient by a tag of the SSH public key
# (docs/module.md, "Build-time recipient check"). Imported by ./module.nix.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) literalExpression mkOption types;

  cfg = config.age;

  # An OpenSSH host key's public half, if the configuration itself holds it (environment.etc);
  # a key generated on the machine at first boot is not known to the build.
  publicKeyInConfig =
    key:
    let
      pub = "${toString key.path}.pub";
      entry = config.environment.etc.${lib.removePrefix "/etc/" pub} or null;
    in
    if !(lib.hasPrefix "/etc/" pub) || entry == null || !(entry.enable or true) then
      [ ]
    else if (entry.text or null) != null then
      [ entry.text ]
    else if builtins.isPath (entry.source or null) then
      [ (builtins.readFile entry.source) ]
    else
      [ ];

  # Only files the build can read: a path value (copied to the store) or a string with store
  # context. A file named by a plain string outside the store is not checked.
  inBuild = secret: builtins.isPath secret.file || builtins.hasContext (toString secret.file);

  checked = lib.filter inBuild (lib.attrValues cfg.secrets);

  secretsJson = builtins.toJSON (
    map (s: {
      inherit (s) name;
      file = "${s.file}";
    }) checked
  );

  check =
    pkgs.runCommand "agenixd-recipient-check"
      {
        inherit secretsJson;
        recipients = lib.concatStringsSep "\n" cfg.hostPublicKeys + "\n";
        passAsFile = [
          "secretsJson"
          "recipients"
        ];
      }
      ''
        if ${lib.getExe' cfg.package "agenixd"} check ${lib.optionalString cfg.strictRecipientCheck "--strict "}--recipients-file "$recipientsPath" --secrets-json "$secretsJsonPath" >report; then
          cat report; mv report "$out"
        else
          cat report >&2; exit 1
        fi
      '';
in
{
  options.age = {
    hostPublicKeys = mkOption {
      type = types.listOf types.str;
      default = lib.optionals (config.services.openssh.enable or false) (
        lib.concatMap publicKeyInConfig (
          lib.filter (k: k.type == "rsa" || k.type == "ed25519") (config.services.openssh.hostKeys or [ ])
        )
      );
      defaultText = literalExpression ''
        # the .pub of each services.openssh.hostKeys (rsa, ed25519) that environment.etc defines
        [ ]
      '';
      example = [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPJDyIr/FSz1cJdcoW69R+NrWzwGK/+3gJpqD1t8L2zE root@host"
        "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
      ];
      description = ''
        This host's public keys: OpenSSH `ssh-ed25519`/`ssh-rsa` lines (as in
        `/etc/ssh/ssh_host_*_key.pub`) or `age1…` recipients. When set, building the system runs
        `agenixd check` over every secret whose {option}`age.secrets.<name>.file` is in the
        store (a `system.checks` derivation) and fails naming each secret not encrypted to any of
        these keys. No private key is needed. A secret with no matching SSH stanza but X25519 or
        ML-KEM stanzas cannot be attributed: it is reported "not checkable", a warning in the
        build log, an error under {option}`age.strictRecipientCheck`. Empty (no check) unless the
        configuration itself holds the public host keys.
      '';
    };

    strictRecipientCheck = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Whether a secret the recipient check cannot attribute (only X25519 or ML-KEM stanzas
        besides SSH stanzas for other keys) fails the build rather than giving a warning.
      '';
    };
  };

  config = lib.mkIf (cfg.hostPublicKeys != [ ] && checked != [ ]) {
    system.checks = [ check ];
  };
}
