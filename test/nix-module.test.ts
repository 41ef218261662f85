// The whole NixOS module (nix/module.nix) under nixpkgs' lib.evalModules, with minimal stand-ins
// for the NixOS options it touches (nix/tests/eval-module.nix), and the flake's module outputs.
// The evaluation needs a copy of nixpkgs' lib, which neither Debian nor npm ships:
// NIXPKGS_LIB=/path/to/nixpkgs.lib (the directory holding lib/, or lib/ itself); see RUN_WITH_LIB.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { NixError, nixEval, nixInstantiate, nixSuite } from "./helpers/nix.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const nix = nixSuite();

/** How to run the full evaluation: the skip line says it, so a skip in CI is never silent. */
const RUN_WITH_LIB =
  "NIXPKGS_LIB is not set, so the full module evaluation (lib.evalModules) did not run: it needs a copy of nixpkgs' lib, " +
  "which neither Debian nor npm ships and CI cannot download. To run it: " +
  "git clone --depth 1 https://github.com/nix-community/nixpkgs.lib /tmp/nixpkgs.lib && npm run build && " +
  "NIXPKGS_LIB=/tmp/nixpkgs.lib npm run test:file build/test/nix-module.test.js " +
  "(with Nix and a nixpkgs channel: NIXPKGS_LIB=$(nix-instantiate --eval --expr '<nixpkgs/lib>'))";

function libDir(): string | undefined {
  const given = process.env.NIXPKGS_LIB;
  if (!given) return undefined;
  const dir = existsSync(join(given, "lib", "default.nix")) ? join(given, "lib") : given;
  assert.ok(existsSync(join(dir, "modules.nix")), `NIXPKGS_LIB=${given} holds no nixpkgs lib (no modules.nix in it or in its lib/)`);
  return dir;
}

interface ManifestTemplate {
  name: string;
  file: string;
  path: string;
  mode: string;
  owner: string;
  group: string;
  symlink: boolean;
  restartUnits: string[];
  reloadUnits: string[];
}
interface Evaluation {
  assertions: string[];
  warnings: string[];
  identityPaths: string[];
  secrets: Record<string, { name: string; path: string; mode: string; owner: string; group: string; symlink: boolean; restartUnits: string[]; reloadUnits: string[]; trim: boolean; credential: boolean }>;
  templates: Record<string, Omit<ManifestTemplate, "file"> & { content: string | null; file: string | null }>;
  placeholder: Record<string, string>;
  credstore: { enable: boolean; encrypted?: boolean; encryptWith?: string };
  manifest: {
    version: number;
    identityPaths: string[];
    credstore: string | null;
    secrets: { name: string; path: string; group: string; neededForUsers: boolean; restartUnits: string[]; reloadUnits: string[]; placeholder: string; trim: boolean; credential: boolean }[];
    templates: ManifestTemplate[];
  };
  services: Record<string, { after: string[]; before: string[]; wantedBy: string[]; unitConfig: { RequiresMountsFor: string[] }; serviceConfig: { ExecStart: string }; environment?: Record<string, string> }>;
  activationScripts: Record<string, { text: string; deps: string[]; supportsDryActivation: boolean }>;
  dryActivate: boolean;
}

/** Evaluates the module for `config`, a NixOS module written as a Nix expression; `module` replaces nix/module.nix. */
function evalModule(lib: string, config: string, what = "r", module?: string): Evaluation {
  const expr = `let r = import ${root}nix/tests/eval-module.nix { lib = import ${lib}; config = ${config}; ${module ? `module = ${module};` : ""} }; in ${what}`;
  return JSON.parse(nixInstantiate(["--eval", "--strict", "--json", "-E", expr])) as Evaluation;
}

const scratch = mkdtempSync(join(tmpdir(), "agenixd-nix-module-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const file = (n: string) => `"/nix/store/00000000000000000000000000000000-${n}.age"`;

describe("flake.nix", nix, () => {
  // The outputs function with stand-ins for its inputs: the module outputs need nothing of them
  // (home-manager is for the Home Manager VM test only).
  const modules = (output: "nixosModules" | "homeManagerModules") =>
    nixEval(`
      let
        nixpkgs = {
          lib.genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
          legacyPackages = throw "not needed for the modules";
        };
        home-manager = throw "not needed for the modules";
        flake = (import ${root}flake.nix).outputs { self = flake; inherit nixpkgs home-manager; };
      in builtins.mapAttrs (_: builtins.toString) flake.${output}`) as Record<string, string>;

  test("nixosModules.age (agenix's name), .default and .agenixd are nix/module.nix", () => {
    const module = join(root, "nix", "module.nix");
    assert.deepEqual(modules("nixosModules"), { age: module, agenixd: module, default: module });
  });

  test("homeManagerModules.age (agenix's name), .default and .agenixd are nix/home-manager.nix", () => {
    const module = join(root, "nix", "home-manager.nix");
    assert.deepEqual(modules("homeManagerModules"), { age: module, agenixd: module, default: module });
  });
});

describe("nix/module.nix with nixpkgs' lib", nix, () => {
  const lib = libDir();

  test("full module evaluation", async (t) => {
    if (!lib) return t.skip(RUN_WITH_LIB);

    await t.test("identityPaths default to openssh's rsa and ed25519 host keys", () => {
      const r = evalModule(
        lib,
        `{ services.openssh.enable = true;
           services.openssh.hostKeys = [
             { type = "ed25519"; path = "/persist/ssh/ssh_host_ed25519_key"; }
             { type = "ecdsa"; path = "/persist/ssh/ssh_host_ecdsa_key"; }
             { type = "rsa"; bits = 4096; path = "/persist/ssh/ssh_host_rsa_key"; } ];
           age.secrets.s.file = ${file("s")}; }`,
      );
      assert.deepEqual(r.assertions, []);
      assert.deepEqual(r.identityPaths, ["/persist/ssh/ssh_host_ed25519_key", "/persist/ssh/ssh_host_rsa_key"]);
      assert.deepEqual(r.manifest.identityPaths, r.identityPaths);
      assert.deepEqual(r.services.agenixd!.unitConfig.RequiresMountsFor, r.identityPaths);
    });

    await t.test("without openssh and without identities, secrets are refused with agenix's message", () => {
      const r = evalModule(lib, `{ age.secrets.s.file = ${file("s")}; }`, "{ inherit (r) assertions identityPaths; }");
      assert.deepEqual(r.identityPaths, []);
      assert.deepEqual(r.assertions, ["age.identityPaths must be set, for example by enabling openssh."]);
    });

    await t.test("no secrets: nothing is configured and nothing is asserted", () => {
      const r = evalModule(lib, `{ }`, "{ inherit (r) assertions services activationScripts; }");
      assert.deepEqual(r.assertions, []);
      assert.deepEqual(r.services, {});
      assert.deepEqual(r.activationScripts, {});
    });

    await t.test("agenix's defaults: path, mode, owner, group from users.users.<owner>.group, symlink", () => {
      const r = evalModule(
        lib,
        `{ age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
           users.users.postgres.group = "postgres-group";
           age.secrets.db = { file = ${file("db")}; owner = "postgres"; };
           age.secrets.plain.file = ${file("plain")};
           age.secrets.unknown-owner = { file = ${file("u")}; owner = "nobody-declared"; };
           age.secrets.renamed = { file = ${file("r")}; name = "nginx/cert.pem"; }; }`,
      );
      assert.deepEqual(r.assertions, []);
      assert.deepEqual(r.secrets.db, { name: "db", file: "/nix/store/00000000000000000000000000000000-db.age", path: "/run/agenix/db", mode: "0400", owner: "postgres", group: "postgres-group", symlink: true, restartUnits: [], reloadUnits: [], trim: false, credential: false });
      assert.equal(r.secrets.plain!.owner, "0");
      assert.equal(r.secrets.plain!.group, "0");
      assert.equal(r.secrets["unknown-owner"]!.group, "0");
      assert.equal(r.secrets.renamed!.path, "/run/agenix/nginx/cert.pem");
      assert.deepEqual(
        r.manifest.secrets.map((s) => s.name),
        ["db", "plain", "nginx/cert.pem", "unknown-owner"],
      );
    });

    await t.test("secretsDir moves the default paths", () => {
      const r = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secretsDir = "/run/secrets"; age.secrets.a.file = ${file("a")}; }`);
      assert.equal(r.secrets.a!.path, "/run/secrets/a");
    });

    await t.test("symlink = false with the default path is refused (agenix #291)", () => {
      const r = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.copy = { file = ${file("c")}; symlink = false; }; }`, "{ inherit (r) assertions; }");
      assert.equal(r.assertions.length, 1);
      assert.match(r.assertions[0]!, /age\.secrets\."copy": symlink = false needs a path outside age\.secretsDir.*#291/);
    });

    await t.test("a name with `..` is refused", () => {
      const r = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.evil = { file = ${file("e")}; name = "../../etc/shadow"; path = "/srv/x"; }; }`, "{ inherit (r) assertions; }");
      assert.deepEqual(r.assertions, ['age.secrets."evil".name = "../../etc/shadow" contains a `..` component, which would place the secret outside age.secretsDir.']);
    });

    await t.test("secretsMountPoint keeps agenix's type check", () => {
      assert.throws(() => evalModule(lib, `{ age.secretsMountPoint = "/run/agenix.d/"; }`, "r.manifest"), /non-empty without trailing slash/);
    });

    await t.test("the renamed age.sshKeyPaths still sets identityPaths, with a warning", () => {
      const r = evalModule(lib, `{ age.sshKeyPaths = [ "/etc/ssh/key" ]; age.secrets.a.file = ${file("a")}; }`);
      assert.deepEqual(r.identityPaths, ["/etc/ssh/key"]);
      assert.ok(r.warnings.some((w) => w.includes("age.sshKeyPaths") && w.includes("age.identityPaths")), r.warnings.join("\n"));
    });

    await t.test("age.ageBin is accepted and ignored, with a warning only when set", () => {
      const set = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.ageBin = "/bin/rage"; age.secrets.a.file = ${file("a")}; }`);
      assert.deepEqual(set.warnings, ["age.ageBin is set, but agenixd does not run an age executable; the option is ignored."]);
      const unset = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; }`);
      assert.deepEqual(unset.warnings, []);
    });

    await t.test("age.plugins: their bin directories go into the manifest, on the unit's PATH, and a TPM plugin gets /dev/tpmrm0", () => {
      const config = `{ pkgs, ... }: let pkg = n: { type = "derivation"; name = "\${n}-1.0"; pname = n; version = "1.0"; meta = { }; outPath = "/nix/store/00000000000000000000000000000000-\${n}-1.0"; }; in {
        age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")};
        age.plugins = [ (pkg "age-plugin-yubikey") (pkg "age-plugin-tpm") ]; }`;
      const r = evalModule(lib, config) as unknown as { manifest: { pluginDirs: string[] }; services: Record<string, { path: unknown[]; serviceConfig: Record<string, unknown> }> };
      assert.deepEqual(r.manifest.pluginDirs, [
        "/nix/store/00000000000000000000000000000000-age-plugin-yubikey-1.0/bin",
        "/nix/store/00000000000000000000000000000000-age-plugin-tpm-1.0/bin",
      ]);
      assert.equal(r.services.agenixd!.path.length, 2);
      assert.deepEqual(r.services.agenixd!.serviceConfig.DeviceAllow, ["/dev/tpmrm0 rw"]);
      assert.equal(r.services.agenixd!.serviceConfig.DevicePolicy, "closed");
      const none = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; }`) as unknown as { manifest: Record<string, unknown>; services: Record<string, Record<string, unknown>> };
      assert.equal("pluginDirs" in none.manifest, false);
      assert.equal("path" in none.services.agenixd!, false);
    });

    await t.test("age-plugin-yubikey: pcscd is enabled, the manifest names its socket, and agenixd-deferred.service runs after pcscd.socket, before the secrets' units but not early ones", () => {
      const pkg = `pkg = n: { type = "derivation"; name = "\${n}-1.0"; pname = n; version = "1.0"; meta = { }; outPath = "/nix/store/00000000000000000000000000000000-\${n}-1.0"; };`;
      const config = `{ pkgs, ... }: let ${pkg} in {
        age.identityPaths = [ "/k" "/etc/ssh/ssh_host_ed25519_key" ];
        age.secrets.wg = { file = ${file("a")}; restartUnits = [ "wireguard-wg0.service" "early-net.service" ]; };
        age.templates.conf = { content = "x"; reloadUnits = [ "nginx.service" ]; };
        systemd.services.early-net.unitConfig.DefaultDependencies = false;
        age.plugins = [ (pkg "age-plugin-yubikey") (pkg "age-plugin-tpm") ]; }`;
      type Svc = { after: string[]; wants: string[]; before: string[]; wantedBy: string[]; unitConfig: Record<string, unknown>; serviceConfig: Record<string, unknown>; requiredBy?: string[] };
      const r = evalModule(lib, config) as unknown as { manifest: { pluginSockets: unknown }; pcscd: boolean; services: Record<string, Svc> };
      assert.deepEqual(r.manifest.pluginSockets, [{ plugin: "yubikey", socket: "/run/pcscd/pcscd.comm", unit: "pcscd.socket" }]);
      assert.equal(r.pcscd, true);
      const d = r.services["agenixd-deferred"]!;
      assert.deepEqual(d.wants, ["pcscd.socket"]);
      assert.ok(d.after.includes("pcscd.socket") && d.after.includes("agenixd.service"), d.after.join(" "));
      assert.deepEqual(d.before, ["shutdown.target", "wireguard-wg0.service", "nginx.service"]);
      assert.equal(d.unitConfig.ConditionPathExists, "/run/agenix.d/.deferred");
      assert.equal(d.serviceConfig.ExecStart, r.services.agenixd!.serviceConfig.ExecStart);
      assert.equal(d.serviceConfig.DevicePolicy, "closed");
      assert.equal(d.requiredBy, undefined, "not part of sysinit-reactivation.target");
      // A TPM plugin alone waits for no socket.
      const tpm = evalModule(lib, `{ pkgs, ... }: let ${pkg} in { age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; age.plugins = [ (pkg "age-plugin-tpm") ]; }`) as unknown as { manifest: Record<string, unknown>; pcscd: boolean; services: Record<string, unknown> };
      assert.equal("pluginSockets" in tpm.manifest, false);
      assert.equal(tpm.pcscd, false);
      assert.equal("agenixd-deferred" in tpm.services, false);
      // pcscd stays the user's to turn off (then nothing listens, and the secrets stay deferred: docs/plugins.md).
      const off = evalModule(lib, `{ pkgs, ... }: let ${pkg} in { age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; age.plugins = [ (pkg "age-plugin-yubikey") ]; services.pcscd.enable = false; }`) as unknown as { pcscd: boolean };
      assert.equal(off.pcscd, false);
    });

    await t.test("a template used as a hashedPasswordFile fails an assertion: users exist before templates are rendered", () => {
      const r = evalModule(
        lib,
        `{ config, ... }: {
           age.identityPaths = [ "/k" ];
           age.secrets.pw.file = ${file("pw")};
           age.templates.pw-hash.content = config.age.placeholder.pw;
           users.users.root.hashedPasswordFile = "/run/agenix/rendered/pw-hash"; }`,
        "{ inherit (r) assertions; }",
      );
      assert.deepEqual(r.assertions, [
        'age.templates."pw-hash".path (/run/agenix/rendered/pw-hash) is a user\'s hashedPasswordFile, but templates are rendered after users are created; use a secret\'s path for hashedPasswordFile.',
      ]);
    });

    await t.test("a secret used as a hashedPasswordFile is installed before users (perl activation)", () => {
      const r = evalModule(
        lib,
        `{ age.identityPaths = [ "/k" ];
           age.secrets.root-pw.file = ${file("root-pw")};
           age.secrets.other.file = ${file("other")};
           users.users.root.hashedPasswordFile = "/run/agenix/root-pw"; }`,
      );
      assert.deepEqual(
        r.manifest.secrets.map((s) => [s.name, s.neededForUsers]),
        [
          ["other", false],
          ["root-pw", true],
        ],
      );
      assert.deepEqual(Object.keys(r.services), ["agenixd"]);
      assert.match(r.activationScripts.agenixdUsers!.text, /\/bin\/agenixd activate --manifest \/nix\/store\/\S+-agenixd-manifest\.json --phase users$/m);
      assert.deepEqual(r.activationScripts.users!.deps, ["agenixdUsers"]);
      assert.ok(r.activationScripts.agenix!.deps.includes("agenixdUsers"));
    });

    for (const [option, unit] of [
      ["systemd.sysusers.enable", "systemd-sysusers.service"],
      ["services.userborn.enable", "userborn.service"],
    ] as const) {
      await t.test(`with ${option}, password secrets get a unit before ${unit}`, () => {
        const r = evalModule(
          lib,
          `{ ${option} = true; age.identityPaths = [ "/k" ];
             age.secrets.pw = { file = ${file("pw")}; path = "/run/keys/alice"; symlink = true; };
             users.users.alice.hashedPasswordFile = "/run/keys/alice"; }`,
        );
        assert.deepEqual(r.assertions, []);
        assert.deepEqual(Object.keys(r.services).sort(), ["agenixd", "agenixd-users"]);
        assert.ok(r.services["agenixd-users"]!.before.includes(unit));
        assert.ok(r.services["agenixd-users"]!.wantedBy.includes(unit));
        assert.match(r.services["agenixd-users"]!.serviceConfig.ExecStart, / --phase users$/);
        assert.ok(r.services.agenixd!.after.includes(unit));
        assert.equal(r.activationScripts.agenixdUsers, undefined);
        assert.equal(r.activationScripts.users, undefined);
      });
    }

    const packageRefusal = /^age\.package is (\S+) \(main program "([^"]+)"\), not agenixd\. In this module age\.package is the agenixd that installs the secrets, not the age binary of agenix's home-manager module/;
    for (const [what, pkg, name] of [
      ["pkgs.age (agenix's home-manager meaning)", "pkgs.age", "age"],
      ["a package without meta.mainProgram, by its name", `{ type = "derivation"; name = "rage-0.11.1"; outPath = "/nix/store/00000000000000000000000000000000-rage-0.11.1"; }`, "rage"],
    ] as const) {
      for (const secrets of [true, false]) {
        await t.test(`age.package = ${what} is refused at evaluation${secrets ? "" : ", even without secrets"}`, () => {
          const r = evalModule(lib, `{ pkgs, ... }: { age.identityPaths = [ "/k" ]; age.package = ${pkg}; ${secrets ? `age.secrets.a.file = ${file("a")};` : ""} }`, "{ inherit (r) assertions; }");
          assert.equal(r.assertions.length, 1, r.assertions.join("\n"));
          const m = packageRefusal.exec(r.assertions[0]!);
          assert.ok(m, r.assertions[0]);
          assert.deepEqual([m[1], m[2]], [name, name]);
        });
      }
    }

    for (const [what, pkg] of [
      ["the default (this repository's package, not inspected)", undefined],
      ["an overridden agenixd", `pkgs.agenixd // { name = "agenixd-0.2.0-patched"; }`],
      ["a package named otherwise whose main program is agenixd", `{ type = "derivation"; name = "my-secrets-runtime"; meta.mainProgram = "agenixd"; outPath = "/nix/store/00000000000000000000000000000000-my-secrets-runtime"; }`],
      ["a wrapper named agenixd without meta", `{ type = "derivation"; name = "agenixd"; outPath = "/nix/store/00000000000000000000000000000000-agenixd"; }`],
    ] as const) {
      await t.test(`age.package: ${what} is accepted and runs bin/agenixd`, () => {
        const r = evalModule(lib, `{ pkgs, ... }: { age.identityPaths = [ "/k" ]; ${pkg ? `age.package = ${pkg};` : ""} age.secrets.a.file = ${file("a")}; }`);
        assert.deepEqual(r.assertions, []);
        assert.match(r.services.agenixd!.serviceConfig.ExecStart, /^\/nix\/store\/0{32}-[^/]+\/bin\/agenixd activate /);
      });
    }

    await t.test("the unit names no mount(8) (agenixd mounts its ramfs with mount(2))", () => {
      const r = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; }`);
      assert.doesNotMatch(JSON.stringify(r.services.agenixd), /AGENIXD_MOUNT|util-linux/);
    });

    await t.test("restartUnits and reloadUnits default to [ ] and reach the manifest, version 2", () => {
      const r = evalModule(
        lib,
        `{ age.identityPaths = [ "/k" ];
           age.secrets.db = { file = ${file("db")}; restartUnits = [ "postgresql.service" "app@1.service" ]; };
           age.secrets.tls = { file = ${file("tls")}; reloadUnits = [ "nginx.service" ]; };
           age.secrets.plain.file = ${file("plain")}; }`,
      );
      assert.deepEqual(r.assertions, []);
      assert.deepEqual([r.secrets.plain!.restartUnits, r.secrets.plain!.reloadUnits], [[], []]);
      assert.equal(r.manifest.version, 2);
      assert.deepEqual(
        r.manifest.secrets.map((s) => [s.name, s.restartUnits, s.reloadUnits]),
        [
          ["db", ["postgresql.service", "app@1.service"], []],
          ["plain", [], []],
          ["tls", [], ["nginx.service"]],
        ],
      );
    });

    await t.test("restartUnits from several modules are merged, as lists are", () => {
      const r = evalModule(
        lib,
        `{ imports = [ { age.secrets.db.restartUnits = [ "app.service" ]; } ];
           age.identityPaths = [ "/k" ];
           age.secrets.db = { file = ${file("db")}; restartUnits = [ "postgresql.service" ]; }; }`,
        "{ inherit (r) assertions; units = r.manifest.secrets; }",
      ) as unknown as { assertions: string[]; units: { restartUnits: string[] }[] };
      assert.deepEqual(r.assertions, []);
      assert.deepEqual([...r.units[0]!.restartUnits].sort(), ["app.service", "postgresql.service"]);
    });

    await t.test("a restartUnits or reloadUnits entry that is not a unit name fails an assertion naming the secret and the unit", () => {
      const r = evalModule(
        lib,
        `{ age.identityPaths = [ "/k" ];
           age.secrets.db = { file = ${file("db")}; restartUnits = [ "postgresql.service" "-postgresql" ]; };
           age.secrets.tls = { file = ${file("tls")}; reloadUnits = [ "nginx service" ]; }; }`,
        "{ inherit (r) assertions; }",
      );
      assert.deepEqual(r.assertions, [
        'age.secrets."db".restartUnits: "-postgresql" is not a systemd unit name (such as "nginx.service": letters, digits and ":_.@\\-", not starting with "-").',
        'age.secrets."tls".reloadUnits: "nginx service" is not a systemd unit name (such as "nginx.service": letters, digits and ":_.@\\-", not starting with "-").',
      ]);
    });

    await t.test("a unit name that is not a string is refused by the option's type", () => {
      assert.throws(() => evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.db = { file = ${file("db")}; restartUnits = [ 1 ]; }; }`, "r.manifest"), /option `age\.secrets\.db\.restartUnits\.[^']*' is not of type `string'/);
    });

    await t.test("age.dryActivate defaults to false: no snippet, and none with a body", () => {
      const r = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; }`, "{ inherit (r) activationScripts dryActivate; }");
      assert.equal(r.dryActivate, false);
      assert.deepEqual(Object.keys(r.activationScripts), ["agenix"]);
      assert.equal(r.activationScripts.agenix!.text, "");
      assert.equal(r.activationScripts.agenix!.supportsDryActivation, false);
    });

    await t.test("age.dryActivate = true: a snippet that supports dry activation runs agenixd activate --dry-run only on dry-activate", () => {
      // A stand-in agenixd that records how it was called, so the snippet's shell runs for real.
      const pkg = join(scratch, "dry-agenixd");
      const calls = join(scratch, "dry-calls");
      rmSync(pkg, { recursive: true, force: true });
      spawnSync("mkdir", ["-p", join(pkg, "bin")]);
      writeFileSync(join(pkg, "bin", "agenixd"), `#!/bin/sh\necho "$NIXOS_ACTION $AGENIXD_SYSTEMCTL $*" >> ${calls}\n`);
      chmodSync(join(pkg, "bin", "agenixd"), 0o755);
      // A stand-in systemd-run: records its options, sets what --setenv= gives, runs the command.
      const systemdRun = join(pkg, "systemd-run");
      writeFileSync(systemdRun, `#!/bin/sh\necho "systemd-run $*" >> ${calls}\nwhile [ $# -gt 0 ]; do case "$1" in --setenv=*) export "\${1#--setenv=}" ;; --*) ;; *) break ;; esac; shift; done\nexec "$@"\n`);
      chmodSync(systemdRun, 0o755);
      const r = evalModule(
        lib,
        `{ age.identityPaths = [ "/k" ]; age.dryActivate = true; age.secrets.a.file = ${file("a")};
           age.package = { type = "derivation"; name = "agenixd"; outPath = "${pkg}"; }; }`,
        "{ inherit (r) assertions activationScripts services; }",
      );
      assert.deepEqual(r.assertions, []);
      const snippet = r.activationScripts.agenixdDryActivate!;
      assert.equal(snippet.supportsDryActivation, true);
      assert.deepEqual(snippet.deps, []);
      // Where writeText put the manifest, as the unit's ExecStart names it.
      const manifest = / --manifest (\/nix\/store\/[0-9a-f]{32}-agenixd-manifest\.json)$/.exec(r.services.agenixd!.serviceConfig.ExecStart)![1]!;
      // The dry run decrypts: it runs in a transient unit that may not swap, by systemd.package's systemd-run.
      const systemctl = r.services.agenixd!.environment!.AGENIXD_SYSTEMCTL!;
      const realRun = `${systemctl.slice(0, -"systemctl".length)}systemd-run`;
      assert.ok(snippet.text.includes(realRun), snippet.text);
      const text = snippet.text.replace(realRun, systemdRun);
      // As switch-to-configuration runs it: NIXOS_ACTION set by the action, unset at boot.
      for (const action of [undefined, "switch", "boot", "test", "dry-activate"]) {
        rmSync(calls, { force: true });
        const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
        if (action) env.NIXOS_ACTION = action;
        const run = spawnSync("bash", ["-euc", text], { env, encoding: "utf8" });
        assert.equal(run.status, 0, run.stderr);
        const called = existsSync(calls) ? readFileSync(calls, "utf8") : "";
        assert.equal(
          called,
          action === "dry-activate"
            ? `systemd-run --quiet --pipe --wait --collect --service-type=exec --property=MemorySwapMax=0 --property=LimitCORE=0 --property=RuntimeMaxSec=3min --setenv=AGENIXD_SYSTEMCTL=${systemctl} --setenv=NIXOS_ACTION=dry-activate ${pkg}/bin/agenixd activate --dry-run --manifest ${manifest}\n` +
                `dry-activate ${systemctl} activate --dry-run --manifest ${manifest}\n`
            : "",
          `NIXOS_ACTION=${action}`,
        );
      }
      // The unit's own run is untouched by the option.
      assert.doesNotMatch(JSON.stringify(evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.dryActivate = true; age.secrets.a.file = ${file("a")}; }`, "r.services")), /dry-run/);
    });

    await t.test("a failing dry run fails the snippet (nixos-rebuild dry-activate reports it)", () => {
      const pkg = join(scratch, "failing-agenixd");
      spawnSync("mkdir", ["-p", join(pkg, "bin")]);
      writeFileSync(join(pkg, "bin", "agenixd"), "#!/bin/sh\nexit 3\n");
      chmodSync(join(pkg, "bin", "agenixd"), 0o755);
      const r = evalModule(
        lib,
        `{ age.identityPaths = [ "/k" ]; age.dryActivate = true; age.secrets.a.file = ${file("a")};
           age.package = { type = "derivation"; name = "agenixd"; outPath = "${pkg}"; }; }`,
        "{ inherit (r) activationScripts; }",
      );
      // systemd-run --wait passes the service's exit status on; here a stand-in that runs the command.
      const systemdRun = join(pkg, "systemd-run");
      writeFileSync(systemdRun, `#!/bin/sh\nwhile [ $# -gt 0 ]; do case "$1" in --*) ;; *) break ;; esac; shift; done\nexec "$@"\n`);
      chmodSync(systemdRun, 0o755);
      const text = r.activationScripts.agenixdDryActivate!.text.replace(/\S*\/bin\/systemd-run/, systemdRun);
      const run = spawnSync("bash", ["-c", text], { env: { PATH: process.env.PATH, NIXOS_ACTION: "dry-activate" }, encoding: "utf8" });
      assert.equal(run.status, 3, run.stderr);
    });

    await t.test("systemctl: passed by absolute path to unit.nix, from systemd.package", () => {
      // The module next to a stand-in unit.nix that takes `systemctl` and hands it back.
      const dir = mkdtempSync(join(scratch, "module-"));
      for (const f of ["module.nix", "manifest.nix", "checks.nix", "template-access.nix", "recipient-check.nix", "plugins.nix", "boot-order.nix", "credstore.nix", "dry-activate.nix"]) copyFileSync(join(root, "nix", f), join(dir, f));
      writeFileSync(
        join(dir, "unit.nix"),
        `{ agenixd, manifest, identityPaths, usersPhase ? false, userManagement ? "perl", systemctl ? null, plugins ? [ ], pluginDevices ? [ ], early ? false, secretPaths ? [ ], deferUntil ? [ ], deferredMarker ? null, consumerUnits ? [ ], earlyConsumers ? [ ], sealCredentialsWith ? null }:
         { services.agenixd = { inherit systemctl; }; activationScripts = { }; }\n`,
      );
      const config = `{ age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; }`;
      const r = evalModule(lib, config, "r.services.agenixd", `${dir}/module.nix`) as unknown as { systemctl: string };
      assert.equal(r.systemctl, "/nix/store/00000000000000000000000000000000-systemd-258/bin/systemctl");
      // systemd.package is the one systemctl is taken from.
      const own = evalModule(lib, `{ pkgs, ... }: { systemd.package = pkgs.agenixd // { outPath = "/nix/store/11111111111111111111111111111111-my-systemd"; }; age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; }`, "r.services.agenixd", `${dir}/module.nix`) as unknown as { systemctl: string };
      assert.equal(own.systemctl, "/nix/store/11111111111111111111111111111111-my-systemd/bin/systemctl");
    });

    await t.test("a user's activation snippet with deps = [ \"agenix\" ] gets a warning with the fix; an identity on a late mount one naming it (issue 19)", () => {
      const r = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; system.activationScripts.readKey = { text = "cat /run/agenix/a"; deps = [ "agenix" ]; }; system.activationScripts.other = { text = ""; deps = [ "users" ]; }; }`);
      assert.deepEqual(r.warnings.filter((w) => w.includes("agenix\" ]")), [
        'system.activationScripts.readKey has deps = [ "agenix" ], but agenixd installs secrets in agenixd.service, after activation: the snippet runs before any secret exists. Move its work into a systemd service with after = [ "agenixd.service" ] and wants = [ "agenixd.service" ] (docs/boot.md).',
      ]);
      assert.ok(r.services.agenixd!.before.includes("cryptsetup-pre.target"), "the identity is on the root: early");
      const late = evalModule(lib, `{ age.identityPaths = [ "/persist/k" ]; age.secrets.a.file = ${file("a")}; fileSystems."/persist" = { mountPoint = "/persist"; }; }`);
      assert.equal(late.warnings.filter((w) => w.startsWith("age.identityPaths has /persist/k, on /persist")).length, 1, late.warnings.join("\n"));
      assert.ok(!late.services.agenixd!.before.includes("cryptsetup-pre.target"));
      assert.deepEqual(late.services.agenixd!.after, ["local-fs.target"]);
    });

    await t.test("the unit is told where systemctl is (AGENIXD_SYSTEMCTL)", () => {
      const r = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; }`);
      assert.equal(r.services.agenixd!.environment?.AGENIXD_SYSTEMCTL, "/nix/store/00000000000000000000000000000000-systemd-258/bin/systemctl");
    });

    // Issue 15: templates, placeholders and credentials.
    const placeholderOf = (attr: string) => `<agenixd:${createHash("sha256").update(attr).digest("hex")}:placeholder>`;
    /** Where the stand-in pkgs.writeText (content-addressed, as the store is) puts `text`. */
    const storeText = (text: string, name: string) => `/nix/store/${createHash("sha256").update(text).digest("hex").slice(0, 32)}-${name}`;

    await t.test("age.placeholder: for every secret, the contract's string of its attribute name", () => {
      const r = evalModule(
        lib,
        `{ age.identityPaths = [ "/k" ];
           age.secrets.tabby-token.file = ${file("t")};
           age.secrets."db/password" = { file = ${file("db")}; name = "db-pw"; };
           age.secrets."with space.and.dots".file = ${file("w")}; }`,
        "{ inherit (r) placeholder; secrets = r.manifest.secrets; }",
      ) as unknown as { placeholder: Record<string, string>; secrets: { name: string; placeholder: string }[] };
      assert.deepEqual(r.placeholder, {
        "db/password": placeholderOf("db/password"),
        "tabby-token": placeholderOf("tabby-token"),
        "with space.and.dots": placeholderOf("with space.and.dots"),
      });
      // The manifest's placeholder is the same string: by attribute name, not by `name`.
      assert.deepEqual(
        r.secrets.map((s) => [s.name, s.placeholder]),
        [
          ["db-pw", placeholderOf("db/password")],
          ["tabby-token", placeholderOf("tabby-token")],
          ["with space.and.dots", placeholderOf("with space.and.dots")],
        ],
      );
    });

    await t.test("a placeholder of an undeclared secret fails the evaluation, naming it", () => {
      assert.throws(
        () =>
          evalModule(
            lib,
            `{ config, ... }: { age.identityPaths = [ "/k" ]; age.secrets.tabby-token.file = ${file("t")};
               age.templates.t.content = "token = \${config.age.placeholder.tabby-tokn}"; }`,
            "r.manifest",
          ),
        (e: unknown) => e instanceof NixError && /attribute 'tabby-tokn' missing/.test(e.message),
      );
      // Written out by hand (or left over from a removed secret): refused by an assertion.
      const r = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; age.templates.t.content = "${placeholderOf("gone")}"; }`, "{ inherit (r) assertions; }");
      assert.deepEqual(r.assertions, [`age.templates."t".content contains the placeholder ${placeholderOf("gone")}, which belongs to no secret of age.secrets. Write placeholders as \${config.age.placeholder.<secret>} of a declared secret.`]);
    });

    await t.test("age.placeholder is read-only", () => {
      assert.throws(() => evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; age.placeholder.a = "x"; }`, "r.placeholder"), /read-only/);
    });

    await t.test("age.templates defaults: rendered/<name> below secretsDir, 0400, root, the owner's group, a symlink, no units", () => {
      const r = evalModule(
        lib,
        `{ config, ... }: {
           age.identityPaths = [ "/k" ];
           age.secretsDir = "/run/secrets";
           age.secretsMountPoint = "/run/secrets.d";
           users.users.tabby.group = "tabby-group";
           age.secrets.tabby-token.file = ${file("t")};
           age.templates."tabby/config.toml" = { owner = "tabby"; content = "token = \\"\${config.age.placeholder.tabby-token}\\"\\n"; };
           age.templates.plain.content = "x";
           age.templates.renamed = { name = "other.conf"; content = "y"; }; }`,
      );
      assert.deepEqual(r.assertions, []);
      assert.deepEqual(r.templates["tabby/config.toml"], {
        name: "tabby/config.toml",
        content: `token = "${placeholderOf("tabby-token")}"\n`,
        file: null,
        path: "/run/secrets/rendered/tabby/config.toml",
        mode: "0400",
        owner: "tabby",
        group: "tabby-group",
        symlink: true,
        restartUnits: [],
        reloadUnits: [],
        fileOutsideStore: false,
        allowWiderAccess: false,
      });
      assert.deepEqual([r.templates.plain!.owner, r.templates.plain!.group, r.templates.plain!.path], ["0", "0", "/run/secrets/rendered/plain"]);
      assert.equal(r.templates.renamed!.path, "/run/secrets/rendered/other.conf");
      assert.deepEqual(
        r.manifest.templates.map((t) => [t.name, t.path]),
        // Sorted by attribute name (plain, renamed, tabby/config.toml), as secrets are.
        [
          ["plain", "/run/secrets/rendered/plain"],
          ["other.conf", "/run/secrets/rendered/other.conf"],
          ["tabby/config.toml", "/run/secrets/rendered/tabby/config.toml"],
        ],
      );
    });

    await t.test("a template's content lands in the store with the placeholder, and the manifest names only that file", () => {
      // The secret's value is never in Nix: only its ciphertext's path and its placeholder are.
      const r = evalModule(
        lib,
        `{ config, ... }: {
           age.identityPaths = [ "/k" ];
           age.secrets.tabby-token = { file = ${file("tabby-token")}; trim = true; };
           age.templates."tabby/config.toml" = {
             content = ''
               [server]
               endpoint = "https://tabby.example.org"
               token = "\${config.age.placeholder.tabby-token}"
             '';
             owner = "tabby";
             group = "tabby";
             restartUnits = [ "tabby-agent.service" ];
           }; }`,
      );
      assert.deepEqual(r.assertions, []);
      const text = `[server]\nendpoint = "https://tabby.example.org"\ntoken = "${placeholderOf("tabby-token")}"\n`;
      assert.deepEqual(r.manifest.templates, [
        {
          name: "tabby/config.toml",
          file: storeText(text, "agenixd-template-tabby-config.toml"),
          path: "/run/agenix/rendered/tabby/config.toml",
          mode: "0400",
          owner: "tabby",
          group: "tabby",
          symlink: true,
          restartUnits: ["tabby-agent.service"],
          reloadUnits: [],
        },
      ]);
      assert.ok(!JSON.stringify(r.manifest).includes("tabby.example.org"), "the template's text is in the manifest");
      assert.deepEqual(
        r.manifest.secrets.map((s) => [s.name, s.trim]),
        [["tabby-token", true]],
      );
    });

    await t.test("a template file given as a path is copied to the store, and its placeholders are checked", () => {
      const conf = join(scratch, "wg0.conf");
      writeFileSync(conf, `[Interface]\nPrivateKey = ${placeholderOf("wg-key")}\n`);
      const r = evalModule(
        lib,
        `{ age.identityPaths = [ "/k" ];
           age.secrets.wg-key.file = ${file("wg-key")};
           age.templates.wg0 = { file = ${conf}; path = "/etc/wireguard/wg0.conf"; symlink = false; reloadUnits = [ "wireguard-wg0.service" ]; }; }`,
      );
      assert.deepEqual(r.assertions, []);
      assert.match(r.manifest.templates[0]!.file, /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-wg0\.conf$/);
      assert.deepEqual([r.manifest.templates[0]!.path, r.manifest.templates[0]!.symlink], ["/etc/wireguard/wg0.conf", false]);
      writeFileSync(conf, `PrivateKey = ${placeholderOf("wg-kye")}\n`);
      const bad = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.wg-key.file = ${file("wg-key")}; age.templates.wg0.file = ${conf}; }`, "{ inherit (r) assertions; }");
      assert.deepEqual(bad.assertions, [`age.templates."wg0".file contains the placeholder ${placeholderOf("wg-kye")}, which belongs to no secret of age.secrets. Write placeholders as \${config.age.placeholder.<secret>} of a declared secret.`]);
    });

    await t.test("a template with both content and file, or neither, fails an assertion", () => {
      const both = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.templates.t = { content = "x"; file = "/etc/t.tmpl"; }; }`, "{ inherit (r) assertions; }");
      assert.deepEqual(both.assertions, ['age.templates."t": set either content or file, not both.']);
      const neither = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.templates.t.owner = "root"; }`, "{ inherit (r) assertions; }");
      assert.deepEqual(neither.assertions, ['age.templates."t": set content (the template\'s text) or file (a file holding it).']);
    });

    await t.test("content from several modules is joined as lines", () => {
      const r = evalModule(lib, `{ imports = [ { age.templates.t.content = "a = 1"; } ]; age.identityPaths = [ "/k" ]; age.templates.t.content = "b = 2"; }`, "{ inherit (r) templates; }");
      assert.deepEqual(r.templates.t!.content!.split("\n").sort(), ["a = 1", "b = 2"]);
    });

    await t.test("templates alone (no secret) still get the unit that renders them", () => {
      const r = evalModule(lib, `{ age.templates.motd.content = "hello\n"; }`);
      assert.deepEqual(r.assertions, []);
      assert.deepEqual(Object.keys(r.services), ["agenixd"]);
      assert.equal(r.manifest.templates.length, 1);
    });

    await t.test("a secret named rendered is refused once there are templates", () => {
      const r = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.r = { file = ${file("r")}; name = "rendered"; }; age.templates.t.content = "x"; }`, "{ inherit (r) assertions; }");
      assert.equal(r.assertions.length, 1, r.assertions.join("\n"));
      assert.match(r.assertions[0]!, /^age\.secrets\."r"\.name = "rendered" is in the generation's "rendered" directory/);
    });

    await t.test("age.credstore.enable: every secret a credential by default, each can opt out; the manifest's credstore", () => {
      const off = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; }`, "{ inherit (r) credstore secrets manifest; }");
      assert.deepEqual(off.credstore, { enable: false, encrypted: false, encryptWith: "auto" });
      assert.equal(off.secrets.a!.credential, false);
      assert.equal(off.manifest.credstore, null);

      const on = evalModule(
        lib,
        `{ age.identityPaths = [ "/k" ]; age.credstore.enable = true;
           age.secrets.a.file = ${file("a")};
           age.secrets."db/password" = { file = ${file("db")}; credential = false; }; }`,
      );
      assert.deepEqual(on.assertions, []);
      assert.deepEqual(
        on.manifest.secrets.map((s) => [s.name, s.credential]),
        [
          ["a", true],
          ["db/password", false],
        ],
      );
      assert.equal(on.manifest.credstore, "/run/credstore");

      const one = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.secrets.a = { file = ${file("a")}; credential = true; }; age.secrets.b.file = ${file("b")}; }`);
      assert.deepEqual(
        one.manifest.secrets.map((s) => [s.name, s.credential]),
        [
          ["a", true],
          ["b", false],
        ],
      );
      assert.equal(one.manifest.credstore, "/run/credstore");
    });

    await t.test("age.credstore.enable with a secret whose name is no credential name fails an assertion saying how to opt out", () => {
      const r = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.credstore.enable = true; age.secrets."db:password".file = ${file("db")}; }`, "{ inherit (r) assertions; }");
      assert.deepEqual(r.assertions, [
        'age.secrets."db:password": credential = true (the default when age.credstore.enable is set), but its name "db:password" does not make a systemd credential name ("db:password", with / as _), which LoadCredential=<name> needs: 1 to 255 printable ASCII characters, without ":". Set credential = false for this secret, or give it such a name.',
      ]);
      // A / becomes _: db/password is the credential db_password.
      const nested = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.credstore.enable = true; age.secrets."db/password".file = ${file("db")}; }`, "{ inherit (r) assertions; }");
      assert.deepEqual(nested.assertions, []);
    });

    await t.test("a unit that loads the credstore as a directory fails an assertion: systemd skips agenixd's symlinks there (issue 19)", () => {
      const config = (credstore: boolean, loads: string) =>
        `{ age.identityPaths = [ "/k" ]; age.credstore.enable = ${credstore}; age.secrets.api-token.file = ${file("api")};
           systemd.services.app.serviceConfig.LoadCredential = ${loads}; }`;
      const dir = evalModule(lib, config(true, `[ "api-token" "all:/run/credstore/" ]`), "{ inherit (r) assertions; }");
      assert.deepEqual(dir.assertions, [
        'systemd.services.app.serviceConfig.LoadCredential has "all:/run/credstore/": a directory as the source makes a credential of each regular file and socket in it, but agenixd publishes its credentials in /run/credstore as symlinks, which systemd skips, so app.service would get none of them. Load each credential by name (LoadCredential = [ "api-token" ]) or by its own path (LoadCredential = [ "api-token:/run/credstore/api-token" ]).',
      ]);
      const single = evalModule(lib, config(true, `"all:/run/credstore"`), "{ inherit (r) assertions; }");
      assert.equal(single.assertions.length, 1, "a single string is a setting too");
      assert.deepEqual(evalModule(lib, config(true, `[ "api-token" "other:/run/credstore/api-token" ]`), "{ inherit (r) assertions; }").assertions, [], "by name and by path are fine");
      assert.deepEqual(evalModule(lib, config(false, `[ "all:/run/credstore" ]`), "{ inherit (r) assertions; }").assertions, [], "no credentials published: the directory is the user's business");
    });

    await t.test("age.credstore.encrypted (issue 24): the manifest's encryptedCredstore, the unit's systemd-creds, TPM and host key; assertions for what cannot work", () => {
      const base = (extra: string) => `{ age.identityPaths = [ "/k" ]; age.secrets.api-token = { file = ${file("api")}; credential = true; }; age.secrets.plain.file = ${file("p")}; ${extra} }`;
      const off = evalModule(lib, base(""), "{ inherit (r) credstore manifest; }");
      assert.deepEqual(off.credstore, { enable: false, encrypted: false, encryptWith: "auto" });
      assert.equal((off.manifest as unknown as { encryptedCredstore: unknown }).encryptedCredstore, null);

      const on = evalModule(lib, base("age.credstore.encrypted = true;"));
      assert.deepEqual(on.assertions, []);
      assert.deepEqual((on.manifest as unknown as { encryptedCredstore: unknown }).encryptedCredstore, { dir: "/run/credstore.encrypted", withKey: "auto" });
      assert.equal(on.manifest.credstore, "/run/credstore", "still named: agenixd removes its old plaintext links there");
      const unit = on.services.agenixd!;
      assert.match(unit.environment!.AGENIXD_SYSTEMD_CREDS!, /\/bin\/systemd-creds$/);
      assert.ok(unit.unitConfig.RequiresMountsFor.includes("/var/lib/systemd"), "auto may use the host key");
      assert.deepEqual((unit.serviceConfig as unknown as { DeviceAllow?: string[] }).DeviceAllow, ["/dev/tpmrm0 rw"], "auto uses the TPM when there is one");
      assert.ok(unit.after.includes("tpm2.target"));

      const host = evalModule(lib, base(`age.credstore.encrypted = true; age.credstore.encryptWith = "host";`));
      assert.equal((host.services.agenixd!.serviceConfig as unknown as { DeviceAllow?: string[] }).DeviceAllow, undefined, "host alone needs no TPM");
      assert.ok(!host.services.agenixd!.after.includes("tpm2.target"));
      const tpm = evalModule(lib, base(`age.credstore.encrypted = true; age.credstore.encryptWith = "tpm2";`));
      assert.ok(!tpm.services.agenixd!.unitConfig.RequiresMountsFor.includes("/var/lib/systemd"), "tpm2 alone needs no host key");
      assert.equal((tpm.manifest as unknown as { encryptedCredstore: { withKey: string } }).encryptedCredstore.withKey, "tpm2");

      // Without a credential, nothing is sealed, and agenixd's unit is as before: kept out of the path of other secrets.
      const none = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.credstore.encrypted = true; age.secrets.plain.file = ${file("p")}; }`);
      assert.equal((none.manifest as unknown as { encryptedCredstore: unknown }).encryptedCredstore, null);
      assert.equal(none.services.agenixd!.environment!.AGENIXD_SYSTEMD_CREDS, undefined);
      assert.ok(!none.services.agenixd!.unitConfig.RequiresMountsFor.includes("/var/lib/systemd"));

      const wrong = evalModule(
        lib,
        base(`age.credstore.encrypted = true; age.secrets.api-token.path = "/etc/api-token";
              systemd.services.app.serviceConfig.LoadCredential = [ "api-token" ];
              systemd.services.all.serviceConfig.LoadCredentialEncrypted = [ "all:/run/credstore.encrypted" ];
              systemd.services.fine.serviceConfig.LoadCredentialEncrypted = [ "api-token" "alias:api-token" ];`),
        "{ inherit (r) assertions; }",
      );
      assert.deepEqual(wrong.assertions.sort(), [
        'age.secrets."api-token".path is /etc/api-token, but with age.credstore.encrypted the credential api-token has no file: it is only sealed in /run/credstore.encrypted for LoadCredentialEncrypted=. Leave path at its default, or set credential = false to install it as a file.',
        'systemd.services.all.serviceConfig.LoadCredentialEncrypted has "all:/run/credstore.encrypted": a directory as the source makes a credential of each regular file in it, but agenixd publishes its sealed credentials in /run/credstore.encrypted as symlinks, which systemd skips, so all.service would get none of them. Load each by name (LoadCredentialEncrypted = [ "api-token" ]).',
        'systemd.services.app.serviceConfig.LoadCredential has "api-token", but with age.credstore.encrypted agenixd publishes api-token only sealed, in /run/credstore.encrypted: LoadCredential= would not decrypt it. Use LoadCredentialEncrypted = [ "api-token" ].',
      ]);
      const plainButEncrypted = evalModule(lib, base(`systemd.services.app.serviceConfig.LoadCredentialEncrypted = [ "api-token" ];`), "{ inherit (r) assertions; }");
      assert.deepEqual(plainButEncrypted.assertions, [
        'systemd.services.app.serviceConfig.LoadCredentialEncrypted has "api-token", but agenixd publishes api-token in plaintext in /run/credstore, which systemd would fail to decrypt, failing app.service. Use LoadCredential = [ "api-token" ], or set age.credstore.encrypted = true.',
      ]);
      const bad = () => evalModule(lib, base(`age.credstore.encrypted = true; age.credstore.encryptWith = "tpm3";`), "{ inherit (r) manifest; }");
      assert.throws(bad, /age\.credstore\.encryptWith.*is not of type/s);
    });

    await t.test("a template file outside the store is refused unless fileOutsideStore; path values and derivations are the store's (issue 23)", () => {
      const outside = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.templates.t.file = "/home/alice/t.tmpl"; }`, "{ inherit (r) assertions; }");
      assert.equal(outside.assertions.length, 1, outside.assertions.join("\n"));
      assert.match(outside.assertions[0]!, /^age\.templates\."t"\.file = "\/home\/alice\/t\.tmpl" is not in the Nix store: .* set age\.templates\."t"\.fileOutsideStore = true if only root can change it/);
      const optedIn = evalModule(lib, `{ age.identityPaths = [ "/k" ]; age.templates.t = { file = "/etc/t.tmpl"; fileOutsideStore = true; }; }`);
      assert.deepEqual(optedIn.assertions, []);
      assert.equal(optedIn.manifest.templates[0]!.file, "/etc/t.tmpl");
      const built = evalModule(lib, `{ pkgs, ... }: { age.identityPaths = [ "/k" ]; age.templates.t.file = pkgs.writeText "t" "x"; }`, "{ inherit (r) assertions; }");
      assert.deepEqual(built.assertions, []);
    });

    await t.test("a template readable by someone who cannot read a secret it embeds warns, naming both; allowWiderAccess silences it (issue 23)", () => {
      const config = (template: string) =>
        `{ config, ... }: { age.identityPaths = [ "/k" ]; users.users.tabby.group = "tabby";
           age.secrets.root-pw.file = ${file("root-pw")};
           age.secrets.tabby-token = { file = ${file("tabby-token")}; owner = "tabby"; mode = "0440"; };
           age.templates.t = { content = "a = \${config.age.placeholder.root-pw}"; ${template} }; }`;
      const wide = evalModule(lib, config(`mode = "0444";`), "{ inherit (r) warnings; }");
      assert.deepEqual(wide.warnings, [
        'age.templates."t" (owner 0, group 0, mode 0444) embeds age.secrets."root-pw" (owner 0, group 0, mode 0400): group 0, every user can read the rendered file but not the secret. Give the template no wider access than its secrets, or set age.templates."t".allowWiderAccess = true if that is meant.',
      ]);
      const other = evalModule(lib, config(`owner = "tabby";`), "{ inherit (r) warnings; }");
      assert.deepEqual(other.warnings, [
        'age.templates."t" (owner tabby, group tabby, mode 0400) embeds age.secrets."root-pw" (owner 0, group 0, mode 0400): user tabby can read the rendered file but not the secret. Give the template no wider access than its secrets, or set age.templates."t".allowWiderAccess = true if that is meant.',
      ]);
      assert.deepEqual(evalModule(lib, config(`mode = "0444"; allowWiderAccess = true;`), "{ inherit (r) warnings; }").warnings, []);
      assert.deepEqual(evalModule(lib, config(``), "{ inherit (r) warnings; }").warnings, [], "root's 0400 template of root's 0400 secret");
      // tabby's own secret, group-readable by tabby, in tabby's 0440 template: no wider.
      const same = evalModule(
        lib,
        `{ config, ... }: { age.identityPaths = [ "/k" ]; users.users.tabby.group = "tabby";
           age.secrets.tabby-token = { file = ${file("tabby-token")}; owner = "tabby"; mode = "0440"; };
           age.templates.t = { content = "a = \${config.age.placeholder.tabby-token}"; owner = "tabby"; mode = "0440"; }; }`,
        "{ inherit (r) warnings; }",
      );
      assert.deepEqual(same.warnings, []);
    });

    await t.test("the new options are documented nixpkgs style: a description and an example each", () => {
      const docs = evalModule(lib, `{ }`, "r.optionDocs") as unknown as { name: string; description: string | null; example: unknown; readOnly: boolean }[];
      const added = docs.filter((o) => /^age\.(templates|placeholder|credstore)|^age\.secrets\.<name>\.(trim|credential)$/.test(o.name) && !o.name.includes("._module."));
      assert.deepEqual(
        added.map((o) => o.name),
        [
          "age.credstore.enable",
          "age.credstore.encryptWith",
          "age.credstore.encrypted",
          "age.placeholder",
          "age.secrets.<name>.credential",
          "age.secrets.<name>.trim",
          "age.templates",
          ...["allowWiderAccess", "content", "file", "fileOutsideStore", "group", "mode", "name", "owner", "path", "reloadUnits", "restartUnits", "symlink"].map((o) => `age.templates.<name>.${o}`),
        ],
      );
      for (const o of added) {
        assert.ok(o.description && o.description.length > 40, `${o.name} has no description`);
        assert.notEqual(o.example, null, `${o.name} has no example`);
      }
      assert.deepEqual(
        docs.filter((o) => o.readOnly && o.name.startsWith("age.") && !o.name.includes("._module.")).map((o) => o.name),
        ["age.manifest", "age.placeholder"],
      );
    });

    await t.test("no password secret, no early phase", () => {
      const r = evalModule(lib, `{ systemd.sysusers.enable = true; age.identityPaths = [ "/k" ]; age.secrets.a.file = ${file("a")}; users.users.bob.hashedPasswordFile = "/etc/bob.pw"; }`);
      assert.deepEqual(Object.keys(r.services), ["agenixd"]);
      assert.deepEqual(r.manifest.secrets.map((s) => s.neededForUsers), [false]);
    });
  });
});
