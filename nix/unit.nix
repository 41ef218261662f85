# How agenixd runs on a NixOS machine: the systemd services, the activation snippets, and the
# rendered unit files of those services. Builtins only, so CI and the boot harness evaluate it
# with plain nix-instantiate and boot exactly what the module declares.
#
# Arguments:
#   agenixd        path (string) of the agenixd executable
#   systemctl      absolute path (string) of systemctl, or null (default): how agenixd restarts
#                  and reloads the units of changed secrets (AGENIXD_SYSTEMCTL): a NixOS
#                  service's PATH is not searched for it (agenixd mounts its ramfs with mount(2))
#   manifest       path (string) of the manifest file (./manifest.nix, written to the store)
#   identityPaths  list of identity paths; the units wait for the mounts holding them
#   usersPhase     bool (default false): some secret has `neededForUsers`, so it is installed
#                  before users are created, in an early phase
#   userManagement "perl" (default: the activation script creates users), "sysusers"
#                  (systemd.sysusers.enable) or "userborn" (services.userborn.enable)
#   early          bool (default false): every input is on a file system the initrd mounts
#                  (./boot-order.nix), so agenixd.service runs right after the root is remounted,
#                  before cryptsetup-pre.target, zfs-import.target and network-pre.target; false
#                  keeps it after local-fs.target
#   secretPaths    list of paths agenixd writes outside secretsDir (default [ ]); the main unit
#                  waits for the mounts holding them
#
# Result:
#   services                attrset for `systemd.services`: `agenixd`, and `agenixd-users` when
#                           the early phase runs as a unit (usersPhase with sysusers or userborn)
#   activationScripts       attrset for `system.activationScripts`: the empty `agenix` anchor, and
#                           with usersPhase under perl activation the `agenixdUsers` snippet that
#                           `users` depends on
#   needsActivationScripts  bool: whether any of those snippets has a body (only usersPhase under
#                           perl). When false, the machine gets its secrets with no activation
#                           script run at all, as under nixos-init (docs/boot.md); the boot
#                           harness boots that way and refuses a configuration where it is true.
#   unitFiles               attrset "<name>.service" -> unit file text, one per entry of `services`
{
  agenixd,
  systemctl ? null,
  manifest,
  identityPaths,
  usersPhase ? false,
  userManagement ? "perl",
  # age.plugins (./plugins.nix): packages put on the units' PATH, and the devices they need
  # ("/dev/tpmrm0 rw") let through DevicePolicy=closed.
  plugins ? [ ],
  pluginDevices ? [ ],
  early ? false,
  secretPaths ? [ ],
  # Units whose sockets some plugin waits for ("pcscd.socket"; the manifest's pluginSockets):
  # with any, agenixd-deferred.service runs the activation again after them, when the full run
  # left the marker `deferredMarker` (a deferred secret), before the units of `consumerUnits` (the
  # restartUnits and reloadUnits of secrets and templates) but those of `earlyConsumers` (the ones
  # without default dependencies: a unit after pcscd.socket cannot precede an early unit without
  # an ordering cycle through sysinit.target).
  deferUntil ? [ ],
  deferredMarker ? null,
  consumerUnits ? [ ],
  earlyConsumers ? [ ],
  # age.credstore.encrypted with some credential secret: the key type systemd-creds encrypt seals
  # them with ("auto", "host", "tpm2", "host+tpm2"), or null when nothing is sealed.
  sealCredentialsWith ? null,
}:
let
  renderUnitFile = import ./unit-file.nix;

  usersUnit =
    {
      perl = null;
      sysusers = "systemd-sysusers.service";
      userborn = "userborn.service";
    }
    .${userManagement}
      or (throw "agenixd: userManagement must be \"perl\", \"sysusers\" or \"userborn\", not \"${toString userManagement}\"");

  earlyUnit = usersPhase && usersUnit != null;
  earlySnippet = usersPhase && usersUnit == null;

  optional = cond: xs: if cond then xs else [ ];

  activate = "${agenixd} activate --manifest ${manifest}";

  # Where agenixd finds systemctl: named here, not looked up on PATH.
  environment =
    (if systemctl == null then { } else { AGENIXD_SYSTEMCTL = systemctl; })
  # A sealed identity (a `.cred` in identityPaths) is opened with systemd-creds, next to systemctl.
  // (if (sealed || sealing) && systemctl != null then { AGENIXD_SYSTEMD_CREDS = "${dirOf systemctl}/systemd-creds"; } else { });

  sealed = builtins.any (p: builtins.match ".*\\.cred" (toString p) != null) identityPaths;

  # Encrypted credentials (src/credstore-encrypted.ts): systemd-creds encrypt at every activation.
  sealing = sealCredentialsWith != null;
  # A key type that may use the TPM ("auto" does when one is there) needs its device; one that
  # may use the host key needs /var/lib/systemd/credential.secret, made there on first use.
  sealingTpm = sealing && sealCredentialsWith != "host";
  sealingHost = sealing && sealCredentialsWith != "tpm2";

  # A sealed identity (systemd-creds) or age-plugin-tpm talks to the TPM. tpm2.target is where
  # systemd (256 and later) waits for the TPM the firmware announces, and only then
  # (systemd-tpm2-generator), so a machine without one is not delayed: after it, the device is
  # there when agenixd opens it. Older systemd has no such unit; a Wants= of it is then nothing.
  tpmUnits = optional (sealed || sealingTpm || builtins.any (d: builtins.match "/dev/tpmrm0( .*)?" d != null) pluginDevices) [ "tpm2.target" ];

  # Shared by both units: an early oneshot that systemd waits for (sd-notify READY=1), run once
  # at boot and exactly once at every switch.
  #
  # How a switch runs it (switch-to-configuration-ng, main.rs): it stops what must stop, runs the
  # activation, daemon-reloads, then restarts sysinit-reactivation.target, and only then reloads,
  # restarts and starts the units it found changed.
  # - PartOf=sysinit-reactivation.target: systemd carries a restart of the target to the unit as
  #   a try-restart (restart if active, nothing if not), and the target's Requires= (our
  #   RequiredBy) adds a start. So the unit re-runs at every switch, with its new text (the
  #   daemon-reload came first), as agenix's activation script re-ran at every switch (a rotated
  #   host key, a `file` outside the store); and a new or failed-then-reset unit is started. Once
  #   (unless that run fails: then the start of the active targets that ends the switch starts
  #   it again, sysinit.target wanting it; docs/boot.md).
  # - X-RestartIfChanged=false (restartIfChanged): without it, a switch that changes the unit (a
  #   new manifest or package) would also put it on switch-to-configuration's restart list
  #   (X-StopIfChanged=false) or stop/start lists, running it a second time after the target:
  #   generations 3, 5, 6 where one run per switch gives 2, 3, 4. With it, switch-to-configuration
  #   prints "NOT restarting the following changed units: agenixd.service", which is expected:
  #   the target's restart has already run the new unit. No restartTriggers, no stopIfChanged:
  #   both only matter to the restart this turns off.
  # The boot harness's switch-to-configuration (harness/switch.ts) follows the same algorithm,
  # and the unit-change scenario counts the generations.
  common = {
    requiredBy = [ "sysinit-reactivation.target" ];
    partOf = [ "sysinit-reactivation.target" ];
    restartIfChanged = false;
    conflicts = [ "shutdown.target" ];
    unitConfig = {
      DefaultDependencies = false;
      # Identities may live on a mount that appears late (impermanence's /persist).
      RequiresMountsFor = map toString identityPaths ++ optional sealingHost [ "/var/lib/systemd" ];
    };
    inherit environment;
    serviceConfig = {
      Type = "notify";
      RemainAfterExit = true;
      # Above the 120 s agenixd waits for another activation's lock, so a wait ends with its own
      # error rather than a kill, plus a minute of work (1000 secrets take under a second). A
      # timeout kills the run: the previous generation stays live (docs/hardening.md).
      TimeoutStartSec = "3min";
    }
    // hardening
    // (if pluginDevices == [ ] then { } else { DeviceAllow = pluginDevices; });
  };

  # What the job needs and no more (docs/hardening.md says why each, and why no mount-namespace
  # option): it mounts a ramfs the whole host sees, writes secrets anywhere in the file system,
  # chowns and chmods them, and talks to systemd over a unix socket.
  hardening = {
    # mount(8) of the ramfs; chown; chmod/utimes of files it does not own; write and read past
    # modes; keep set-group-ID bits a secret's mode asks for.
    CapabilityBoundingSet = [
      "CAP_SYS_ADMIN"
      "CAP_CHOWN"
      "CAP_FOWNER"
      "CAP_DAC_OVERRIDE"
      "CAP_FSETID"
    ];
    NoNewPrivileges = true;
    # Plaintext and host keys never end up in a core dump, nor in swap.
    LimitCORE = 0;
    MemorySwapMax = 0;
    # Sized from the limits (docs/limits.md): node's ~60 MiB, and for the largest single item a
    # 64 MiB `.age` file, its armor decoded, its 64 MiB plaintext, the previous value it is
    # compared with and a 64 MiB rendered template: under 400 MiB. All plaintexts of an
    # activation are held at once, so many large secrets need more: raise both with
    # systemd.services.agenixd.serviceConfig.MemoryMax = lib.mkForce "4G" (docs/hardening.md).
    # A crafted input that got past the limits is killed at 1 GiB instead of taking the host.
    MemoryHigh = "768M";
    MemoryMax = "1G";
    UMask = "0077";
    # sd_notify and the lock are unix sockets; nothing else.
    RestrictAddressFamilies = [ "AF_UNIX" ];
    IPAddressDeny = "any";
    RestrictNamespaces = true;
    LockPersonality = true;
    RestrictRealtime = true;
    ProtectClock = true;
    ProtectHostname = true;
    DevicePolicy = "closed";
  }
  # systemd-creds decrypt of a TPM-sealed identity talks to the TPM's resource manager.
  // (if sealed || sealingTpm then { DeviceAllow = [ "/dev/tpmrm0 rw" ]; } else { })
  // {
    SystemCallArchitectures = "native";
    # @pkey: V8 guards its code pages with memory protection keys when it may (node 20 calls
    # pkey_alloc at start; it is the only call outside the other two sets, measured in the boot
    # harness with the default action, a kill).
    SystemCallFilter = [
      "@system-service"
      "@mount"
      "@pkey"
    ];
    # A call outside the filter (another node version's) fails rather than killing the boot's
    # only source of secrets.
    SystemCallErrorNumber = "EPERM";
  };

  agenixdService = common // (if plugins == [ ] then { } else { path = plugins; }) // {
    description = "Install agenix secrets";
    # agenix's unit under sysusers/userborn; units ordered after it keep working.
    aliases = [ "agenix-install-secrets.service" ];
    # Before= is what makes ordinary services (ordered after sysinit.target) find their secrets.
    wantedBy = [ "sysinit.target" ];
    # agenix users point early consumers at /run/agenix (a crypttab keyfile, a ZFS keylocation, a
    # network unit with DefaultDependencies=no): when its inputs allow (./boot-order.nix), run as
    # agenix's activation did, before those, needing only a writable root and the mounts named in
    # RequiresMountsFor=. Otherwise after every local file system, and the module warns.
    before = [
      "sysinit.target"
      "sysinit-reactivation.target"
      "shutdown.target"
    ]
    ++ optional early [
      "cryptsetup-pre.target"
      "zfs-import.target"
      "network-pre.target"
    ];
    # cryptsetup-pre.target and network-pre.target are passive (systemd.special(7)): only a unit
    # that must run before them pulls them in, or the ordering above orders against nothing.
    # zfs-import.target is pulled in by the ZFS units themselves.
    wants = optional early [
      "cryptsetup-pre.target"
      "network-pre.target"
    ]
    ++ tpmUnits;
    # Owners and groups must exist before secrets are chowned to them.
    after =
      (if early then [ "systemd-remount-fs.service" ] else [ "local-fs.target" ])
      ++ optional (usersUnit != null) [ usersUnit ]
      ++ optional earlyUnit [ "agenixd-users.service" ]
      ++ tpmUnits;
    unitConfig = common.unitConfig // {
      # Secrets written outside secretsDir land on their file system, not below it.
      RequiresMountsFor = common.unitConfig.RequiresMountsFor ++ map toString secretPaths;
    };
    serviceConfig = common.serviceConfig // {
      ExecStart = activate;
    };
  };

  agenixdUsersService = common // (if plugins == [ ] then { } else { path = plugins; }) // {
    description = "Install agenix secrets needed to create users";
    wantedBy = [
      "sysinit.target"
      usersUnit
    ];
    # agenixd.service too: both write generations, and a switch restarts both without
    # necessarily restarting the user manager between them.
    before = [
      usersUnit
      "agenixd.service"
      "sysinit.target"
      "sysinit-reactivation.target"
      "shutdown.target"
    ];
    after = [ "systemd-remount-fs.service" ] ++ tpmUnits;
    wants = tpmUnits;
    serviceConfig = common.serviceConfig // {
      ExecStart = "${activate} --phase users";
    };
  };

  # The users phase as perl activation's snippet, with the units' environment. At boot it runs
  # before systemd, and before any swap device is on (systemd turns them on later): directly. At a
  # switch swap may be on, and systemd runs: then in a transient unit that may not swap, as
  # agenixd-users.service may not (./transient-run.nix; mlockall is no way out, V8 aborts under it:
  # docs/hardening.md). Without systemctl's path (tests) there is no systemd-run to name.
  usersPhaseSnippet =
    let
      direct = builtins.concatStringsSep " " (
        map (n: "${n}=${environment.${n}}") (builtins.attrNames environment) ++ [ "${activate} --phase users" ]
      );
    in
    if systemctl == null then
      direct
    else
      ''
        agenixd_swaps=0
        while read -r _; do agenixd_swaps=$((agenixd_swaps + 1)); done < /proc/swaps
        if [ -d /run/systemd/system ] && [ "$agenixd_swaps" -gt 1 ]; then
          ${import ./transient-run.nix {
            systemdRun = "${dirOf systemctl}/systemd-run";
            inherit environment;
            command = "${activate} --phase users";
          }}
        else
          ${direct}
        fi
      '';

  deferredBefore = builtins.foldl' (
    acc: u: if builtins.elem u acc || builtins.elem u earlyConsumers then acc else acc ++ [ u ]
  ) [ ] consumerUnits;

  # The second run for secrets deferred until a plugin's socket listens (docs/plugins.md): the same
  # activation, after those sockets (which come after sysinit.target) and after agenixd.service,
  # and only when that run left the marker. Not part of sysinit-reactivation.target: at a switch
  # the sockets listen already, and agenixd.service defers nothing.
  agenixdDeferredService = builtins.removeAttrs common [ "requiredBy" "partOf" ] // (if plugins == [ ] then { } else { path = plugins; }) // {
    description = "Install agenix secrets that waited for ${builtins.concatStringsSep ", " deferUntil}";
    wantedBy = deferUntil ++ [ "multi-user.target" ];
    wants = deferUntil;
    after = [ "agenixd.service" ] ++ deferUntil ++ tpmUnits;
    before = [ "shutdown.target" ] ++ deferredBefore;
    unitConfig = common.unitConfig // {
      ConditionPathExists = deferredMarker;
      RequiresMountsFor = common.unitConfig.RequiresMountsFor ++ map toString secretPaths;
    };
    serviceConfig = common.serviceConfig // {
      ExecStart = activate;
    };
  };

  services = {
    agenixd = agenixdService;
  }
  // (if earlyUnit then { agenixd-users = agenixdUsersService; } else { })
  // (if deferUntil != [ ] then { agenixd-deferred = agenixdDeferredService; } else { });

  activationScripts = {
    # Kept empty for modules written against agenix that order themselves after it; secrets
    # themselves arrive with agenixd.service. NixOS does not warn about empty scripts: they only
    # order others.
    agenix = {
      text = "";
      deps = [ "specialfs" ] ++ optional (usersUnit == null) [ "users" ] ++ optional earlySnippet [ "agenixdUsers" ];
    };
  }
  // (
    if earlySnippet then
      {
        # The one activation script with a body, and the one place left that needs one: perl
        # activation creates users (and reads their hashedPasswordFile) in the `users` activation
        # script, before systemd starts any unit, so the password secrets must be installed by an
        # activation script that `users` waits for, at boot and at every switch. NixOS is
        # deprecating activation scripts (nixpkgs #475305; a non-empty one will warn, then fail)
        # and nixos-init runs none: use services.userborn.enable (or systemd.sysusers.enable for
        # system users) and this phase becomes agenixd-users.service. The identities must exist
        # before activation: at first boot `etc` runs after `users`, so not from environment.etc.
        agenixdUsers = {
          text = usersPhaseSnippet;
          deps = [ "specialfs" ];
        };
        users.deps = [ "agenixdUsers" ];
      }
    else
      { }
  );
in
{
  inherit services activationScripts;

  needsActivationScripts = builtins.any (s: (s.text or "") != "") (builtins.attrValues activationScripts);

  unitFiles = builtins.listToAttrs (
    map (name: {
      name = "${name}.service";
      value = renderUnitFile services.${name};
    }) (builtins.attrNames services)
  );
}
