// The Nix side without nixpkgs: every .nix file parses, and the pure functions in nix/
// (manifest.nix, checks.nix, unit.nix, unit-file.nix) give the expected manifest and units for
// example configurations, and refuse the bad ones. Evaluated with Debian's nix-instantiate
// against the dummy store, so nothing is written to /nix.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { ManifestFile, SecretEntry } from "../src/manifest.js";
import { fileURLToPath } from "node:url";
import { nixSuite } from "./helpers/nix.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const nixDir = join(root, "nix");
const scratch = mkdtempSync(join(tmpdir(), "agenixd-nix-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const nix = nixSuite();
const nixEnv = { ...process.env, NIX_STATE_DIR: join(scratch, "state"), XDG_CACHE_HOME: join(scratch, "cache") };

class NixError extends Error {}

/** Evaluates `expr` (a Nix function of `json`) applied to the JSON of `arg`. */
function nixEval(expr: string, arg: unknown = null): unknown {
  const r = spawnSync(
    "nix-instantiate",
    ["--store", "dummy://", "--eval", "--strict", "--json", "--argstr", "json", JSON.stringify(arg), "-E", `{ json }: let arg = builtins.fromJSON json; in ${expr}`],
    { encoding: "utf8", env: nixEnv },
  );
  if (r.error) throw r.error;
  if (r.status !== 0) throw new NixError(r.stderr);
  return JSON.parse(r.stdout);
}

const manifestOf = (config: unknown) => nixEval(`import ${nixDir}/manifest.nix arg`, config) as Manifest;
const unitOf = (args: unknown) => nixEval(`import ${nixDir}/unit.nix arg`, args) as UnitPlan;

// The module always writes neededForUsers.
type ManifestSecret = Required<SecretEntry>;
interface Manifest extends ManifestFile {
  secrets: ManifestSecret[];
}
interface Service {
  description: string;
  wantedBy: string[];
  requiredBy: string[];
  partOf: string[];
  before: string[];
  after: string[];
  conflicts: string[];
  unitConfig: { DefaultDependencies: boolean; RequiresMountsFor: string[] };
  serviceConfig: { Type: string; RemainAfterExit: boolean; ExecStart: string } & Record<string, unknown>;
  environment: Record<string, string>;
  restartIfChanged: boolean;
  restartTriggers?: string[];
  stopIfChanged?: boolean;
  aliases?: string[];
}
interface UnitPlan {
  services: Record<string, Service>;
  activationScripts: Record<string, { text?: string; deps: string[] }>;
  needsActivationScripts: boolean;
  unitFiles: Record<string, string>;
}

function secret(attr: string, extra: Partial<ManifestSecret> = {}) {
  return {
    name: attr,
    file: `/nix/store/00000000000000000000000000000000-${attr.replaceAll("/", "-")}.age`,
    path: `/run/agenix/${extra.name ?? attr}`,
    mode: "0400",
    owner: "0",
    group: "0",
    symlink: true,
    ...extra,
  };
}

function options(secrets: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return {
    secrets,
    identityPaths: ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"],
    secretsDir: "/run/agenix",
    secretsMountPoint: "/run/agenix.d",
    keepGenerations: 1,
    ...extra,
  };
}

function nixFiles(dir: string): string[] {
  const skip = new Set(["node_modules", "build", "dist", ".git"]);
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.isDirectory()) return skip.has(e.name) ? [] : nixFiles(join(dir, e.name));
    return e.name.endsWith(".nix") ? [join(dir, e.name)] : [];
  });
}

describe("every .nix file", nix, () => {
  const files = nixFiles(root);
  test("includes the module, the pure functions, the package and the flake", () => {
    const names = files.map((f) => relative(root, f));
    for (const expected of ["flake.nix", "nix/module.nix", "nix/manifest.nix", "nix/checks.nix", "nix/unit.nix", "nix/unit-file.nix", "nix/package.nix"]) {
      assert.ok(names.includes(expected), `${expected} missing from ${names.join(", ")}`);
    }
  });
  for (const file of files) {
    test(`parses: ${relative(root, file)}`, () => {
      execFileSync("nix-instantiate", ["--store", "dummy://", "--parse", file], { env: nixEnv, stdio: ["ignore", "ignore", "pipe"] });
    });
  }
});

/** The placeholder the manifest gives the secret whose attribute name is `attr` (docs/manifest.md). */
const placeholderOf = (attr: string) => `<agenixd:${createHash("sha256").update(attr).digest("hex")}:placeholder>`;

describe("nix/manifest.nix", nix, () => {
  test("writes every field of every secret, sorted by attribute name", () => {
    const m = manifestOf(
      options(
        {
          "db/password": secret("db/password", { owner: "postgres", group: "postgres" }),
          "-leading-hyphen": secret("-leading-hyphen", { mode: "440" }),
          tls: secret("tls", { name: "nginx/key.pem", path: "/var/lib/nginx/key.pem", symlink: false, mode: "0440", owner: "996", group: "nginx" }),
          "root-password": secret("root-password", { mode: "u=r,g=r" }),
        },
        { keepGenerations: 3, passwordFilePaths: ["/run/agenix/root-password"] },
      ),
    );
    assert.deepEqual(m, {
      version: 2,
      secretsDir: "/run/agenix",
      secretsMountPoint: "/run/agenix.d",
      identityPaths: ["/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key"],
      keepGenerations: 3,
      secrets: [
        {
          name: "-leading-hyphen",
          file: "/nix/store/00000000000000000000000000000000--leading-hyphen.age",
          path: "/run/agenix/-leading-hyphen",
          mode: "440",
          owner: "0",
          group: "0",
          symlink: true,
          neededForUsers: false,
          restartUnits: [],
          reloadUnits: [],
          placeholder: placeholderOf("-leading-hyphen"),
          trim: false,
          credential: false,
        },
        {
          name: "db/password",
          file: "/nix/store/00000000000000000000000000000000-db-password.age",
          path: "/run/agenix/db/password",
          mode: "0400",
          owner: "postgres",
          group: "postgres",
          symlink: true,
          neededForUsers: false,
          restartUnits: [],
          reloadUnits: [],
          placeholder: placeholderOf("db/password"),
          trim: false,
          credential: false,
        },
        {
          name: "root-password",
          file: "/nix/store/00000000000000000000000000000000-root-password.age",
          path: "/run/agenix/root-password",
          mode: "u=r,g=r",
          owner: "0",
          group: "0",
          symlink: true,
          neededForUsers: true,
          restartUnits: [],
          reloadUnits: [],
          placeholder: placeholderOf("root-password"),
          trim: false,
          credential: false,
        },
        {
          name: "nginx/key.pem",
          file: "/nix/store/00000000000000000000000000000000-tls.age",
          path: "/var/lib/nginx/key.pem",
          mode: "0440",
          owner: "996",
          group: "nginx",
          symlink: false,
          neededForUsers: false,
          restartUnits: [],
          reloadUnits: [],
          placeholder: placeholderOf("tls"),
          trim: false,
          credential: false,
        },
      ],
      credstore: null,
      encryptedCredstore: null,
      templates: [],
    });
  });

  test("orders by attribute name, not by the secret's name", () => {
    const m = manifestOf(options({ b: secret("b", { name: "a" }), a: secret("a", { name: "z" }) }));
    assert.deepEqual(
      m.secrets.map((s) => s.name),
      ["z", "a"],
    );
  });

  test("an empty configuration needs no identity", () => {
    const m = manifestOf(options({}, { identityPaths: [] }));
    assert.deepEqual(m.secrets, []);
    assert.deepEqual(m.identityPaths, []);
  });

  test("never copies an identity given as a path value into the store; copies `file` (ciphertext)", () => {
    const key = join(scratch, "host_key");
    const ciphertext = join(scratch, "secret.age");
    writeFileSync(key, "not a real key\n");
    writeFileSync(ciphertext, "not real ciphertext\n");
    const m = nixEval(`import ${nixDir}/manifest.nix {
      secrets.s = { name = "s"; file = ${ciphertext}; path = "/run/agenix/s"; mode = "0400"; owner = "0"; group = "0"; symlink = true; };
      identityPaths = [ ${key} ]; secretsDir = /run/agenix; secretsMountPoint = "/run/agenix.d"; keepGenerations = 1; }`) as Manifest;
    assert.deepEqual(m.identityPaths, [key]);
    assert.equal(m.secretsDir, "/run/agenix");
    assert.match(m.secrets[0]!.file, /^\/nix\/store\/[0-9a-z]{32}-secret\.age$/);
  });

  const refusals: [string, unknown, RegExp][] = [
    ["a name with `..`", options({ x: secret("x", { name: "../shadow", path: "/etc/shadow-copy" }) }), /age\.secrets\."x"\.name = "\.\.\/shadow" contains a `\.\.` component/],
    ["a name with `..` inside", options({ x: secret("x", { name: "a/../../b" }) }), /age\.secrets\."x"\.name = "a\/\.\.\/\.\.\/b" contains a `\.\.` component/],
    ["an absolute name", options({ x: secret("x", { name: "/etc/passwd", path: "/srv/x" }) }), /age\.secrets\."x"\.name = "\/etc\/passwd" must be relative/],
    ["an empty component in the name", options({ x: secret("x", { name: "a//b" }) }), /must be a normalized relative path/],
    ["a newline in the name", options({ x: secret("x", { name: "a\nb", path: "/srv/x" }) }), /age\.secrets\."x"\.name contains a newline/],
    ["a path inside the mount point", options({ x: secret("x", { path: "/run/agenix.d/1/x" }) }), /age\.secrets\."x"\.path = "\/run\/agenix\.d\/1\/x" is inside age\.secretsMountPoint/],
    ["a relative path", options({ x: secret("x", { path: "run/x" }) }), /age\.secrets\."x"\.path = "run\/x" must be an absolute path/],
    ["symlink = false with the default path (agenix #291)", options({ x: secret("x", { symlink: false }) }), /age\.secrets\."x": symlink = false needs a path outside age\.secretsDir \(\/run\/agenix\).*agenix #291/],
    ["symlink = false with a path below secretsDir", options({ x: secret("x", { symlink: false, path: "/run/agenix/sub/y" }) }), /agenix #291/],
    ["a mode chmod would refuse", options({ x: secret("x", { mode: "rw" }) }), /age\.secrets\."x"\.mode = "rw" is not a chmod mode/],
    ["two secrets at one path", options({ a: secret("a", { path: "/srv/p" }), b: secret("b", { path: "/srv/p" }) }), /age\.secrets\."a" and age\.secrets\."b" have the same path "\/srv\/p"/],
    ["two symlinked secrets with one name", options({ a: secret("a", { name: "n", path: "/srv/a" }), b: secret("b", { name: "n", path: "/srv/b" }) }), /have the same name "n"/],
    ["secrets without identities", options({ x: secret("x") }, { identityPaths: [] }), /age\.identityPaths must be set, for example by enabling openssh\./],
    ["a relative identity path", options({ x: secret("x") }, { identityPaths: ["etc/key"] }), /age\.identityPaths entry "etc\/key" must be an absolute path/],
    ["a mount point with a trailing slash", options({}, { secretsMountPoint: "/run/agenix.d/" }), /age\.secretsMountPoint = "\/run\/agenix\.d\/" must be a non-empty absolute path without a trailing slash/],
    ["an empty mount point", options({}, { secretsMountPoint: "" }), /age\.secretsMountPoint = "" must be a non-empty/],
    ["secretsDir inside the mount point", options({}, { secretsDir: "/run/agenix.d/current" }), /must not contain one another/],
    ["keepGenerations = 0", options({}, { keepGenerations: 0 }), /age\.keepGenerations must be a positive integer/],
  ];
  for (const [what, config, message] of refusals) {
    test(`refuses ${what}`, () => {
      assert.throws(() => manifestOf(config), (e: unknown) => {
        assert.ok(e instanceof NixError, String(e));
        assert.match(e.message, /agenixd: refusing this age configuration/);
        assert.match(e.message, message);
        return true;
      });
    });
  }

  test("checks.nix reports every problem at once, and none for a sound configuration", () => {
    const problems = nixEval(`import ${nixDir}/checks.nix arg`, options({ a: secret("a", { symlink: false }), b: secret("b", { name: "..", path: "/srv/b" }) })) as string[];
    assert.equal(problems.length, 2, problems.join("\n"));
    assert.deepEqual(nixEval(`import ${nixDir}/checks.nix arg`, options({ a: secret("a"), c: secret("c", { symlink: false, path: "/srv/c" }) })), []);
  });
});

describe("nix/credstore.nix", nix, () => {
  const problems = (credstore: string | null, loadCredentials: Record<string, string | string[]>) =>
    nixEval(`import ${nixDir}/credstore.nix arg`, { credstore, loadCredentials }) as string[];

  test("refuses LoadCredential= with the credstore directory as the source, however it is spelled, naming unit and setting", () => {
    const found = problems("/run/credstore", {
      a: "x:/run/credstore",
      b: ["by-name", "by-path:/run/credstore/api", "w:/run//credstore/./"],
      c: "q:/run/credstore/",
      d: "api-token",
      e: "elsewhere:/etc/credstore",
    });
    assert.deepEqual(found.map((m) => /^systemd\.services\.(\w+)\.serviceConfig\.LoadCredential has "([^"]*)"/.exec(m)!.slice(1)), [
      ["a", "x:/run/credstore"],
      ["b", "w:/run//credstore/./"],
      ["c", "q:/run/credstore/"],
    ]);
    assert.match(found[0]!, /as symlinks, which systemd skips, so a\.service would get none of them\. Load each credential by name .* or by its own path \(LoadCredential = \[ "api-token:\/run\/credstore\/api-token" \]\)/);
  });

  test("nothing to say when no secret is a credential", () => {
    assert.deepEqual(problems(null, { a: "x:/run/credstore" }), []);
  });
  test("with sealed credentials (issue 24): LoadCredential= of one, LoadCredentialEncrypted= of the encrypted store as a directory; without: LoadCredentialEncrypted= of a plaintext one", () => {
    const check = (arg: Record<string, unknown>) => nixEval(`import ${nixDir}/credstore.nix arg`, arg) as string[];
    const sealed = check({
      credstore: null,
      encryptedCredstore: "/run/credstore.encrypted",
      credentials: ["api-token", "db_password"],
      loadCredentials: { a: ["api-token"], b: "alias:db_password", c: ["other", "x:/run/credstore"], d: "abs:/etc/api-token" },
      loadCredentialsEncrypted: { e: ["api-token", "alias:db_password"], f: "all:/run//credstore.encrypted/" },
    });
    assert.deepEqual(sealed.map((m) => /^systemd\.services\.(\w+)\.serviceConfig\.(\w+) has "([^"]*)"/.exec(m)!.slice(1)), [
      ["a", "LoadCredential", "api-token"],
      ["b", "LoadCredential", "alias:db_password"],
      ["f", "LoadCredentialEncrypted", "all:/run//credstore.encrypted/"],
    ]);
    assert.match(sealed[1]!, /agenixd publishes db_password only sealed, in \/run\/credstore\.encrypted: LoadCredential= would not decrypt it\. Use LoadCredentialEncrypted = \[ "db_password" \]\.$/);
    const plain = check({ credstore: "/run/credstore", credentials: ["api-token"], loadCredentials: { a: "api-token" }, loadCredentialsEncrypted: { a: ["api-token"], b: "mine" } });
    assert.deepEqual(plain, [
      'systemd.services.a.serviceConfig.LoadCredentialEncrypted has "api-token", but agenixd publishes api-token in plaintext in /run/credstore, which systemd would fail to decrypt, failing a.service. Use LoadCredential = [ "api-token" ], or set age.credstore.encrypted = true.',
    ]);
  });
});

describe("nix/unit.nix", nix, () => {
  const base = {
    agenixd: "/nix/store/00000000000000000000000000000000-agenixd/bin/agenixd",
    manifest: "/nix/store/11111111111111111111111111111111-agenixd-manifest.json",
    identityPaths: ["/persist/etc/ssh/ssh_host_ed25519_key"],
  };
  const activate = `${base.agenixd} activate --manifest ${base.manifest}`;

  test("agenixd.service runs before sysinit.target and is re-run by sysinit-reactivation.target", () => {
    const plan = unitOf(base);
    assert.deepEqual(Object.keys(plan.services), ["agenixd"]);
    const s = plan.services.agenixd!;
    assert.equal(s.serviceConfig.Type, "notify");
    assert.equal(s.serviceConfig.RemainAfterExit, true);
    assert.equal(s.serviceConfig.ExecStart, activate);
    assert.equal(s.unitConfig.DefaultDependencies, false);
    assert.deepEqual(s.unitConfig.RequiresMountsFor, base.identityPaths);
    assert.deepEqual(s.wantedBy, ["sysinit.target"]);
    assert.deepEqual(s.requiredBy, ["sysinit-reactivation.target"]);
    assert.deepEqual(s.partOf, ["sysinit-reactivation.target"], "re-run at every switch, as agenix is");
    assert.ok(s.before.includes("sysinit.target"));
    assert.ok(s.before.includes("sysinit-reactivation.target"));
    assert.deepEqual(s.after, ["local-fs.target"]);
    assert.deepEqual(s.aliases, ["agenix-install-secrets.service"]);
  });

  test("a switch runs it once: switch-to-configuration leaves it to the target's restart (X-RestartIfChanged=false)", () => {
    for (const s of Object.values(unitOf({ ...base, userManagement: "sysusers", usersPhase: true }).services)) {
      assert.equal(s.restartIfChanged, false);
      assert.equal(s.restartTriggers, undefined, "a restart trigger only changes the text of a unit that is not restarted for it");
      assert.equal(s.stopIfChanged, undefined);
    }
  });

  test("no mount(8) to name (agenixd mounts with mount(2)); systemctl by absolute path when given", () => {
    for (const s of Object.values(unitOf({ ...base, userManagement: "userborn", usersPhase: true }).services)) assert.deepEqual(s.environment, {});
    for (const s of Object.values(unitOf({ ...base, systemctl: "/nix/store/s/bin/systemctl", userManagement: "userborn", usersPhase: true }).services)) {
      assert.deepEqual(s.environment, { AGENIXD_SYSTEMCTL: "/nix/store/s/bin/systemctl" });
    }
  });

  test("both units are hardened, with an explicit start timeout", () => {
    const plan = unitOf({ ...base, userManagement: "sysusers", usersPhase: true });
    for (const s of Object.values(plan.services)) {
      assert.deepEqual(
        Object.fromEntries(Object.entries(s.serviceConfig).filter(([k]) => !["Type", "RemainAfterExit", "ExecStart"].includes(k))),
        {
          TimeoutStartSec: "3min",
          CapabilityBoundingSet: ["CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE", "CAP_FSETID"],
          NoNewPrivileges: true,
          LimitCORE: 0,
          MemorySwapMax: 0,
          MemoryHigh: "768M",
          MemoryMax: "1G",
          UMask: "0077",
          RestrictAddressFamilies: ["AF_UNIX"],
          IPAddressDeny: "any",
          RestrictNamespaces: true,
          LockPersonality: true,
          RestrictRealtime: true,
          ProtectClock: true,
          ProtectHostname: true,
          DevicePolicy: "closed",
          SystemCallArchitectures: "native",
          SystemCallFilter: ["@system-service", "@mount", "@pkey"],
          SystemCallErrorNumber: "EPERM",
        },
      );
    }
  });

  test("perl activation without password secrets: only the empty agenix anchor", () => {
    const plan = unitOf(base);
    assert.deepEqual(plan.activationScripts, { agenix: { text: "", deps: ["specialfs", "users"] } });
    assert.equal(plan.needsActivationScripts, false, "boots with no activation script run, as under nixos-init");
  });

  test("perl activation with password secrets: a snippet that `users` waits for", () => {
    const plan = unitOf({ ...base, usersPhase: true });
    assert.deepEqual(Object.keys(plan.services), ["agenixd"]);
    // The units' environment in front of the command: the activation script's PATH is no unit's either.
    assert.deepEqual(plan.activationScripts.agenixdUsers, { text: `${activate} --phase users`, deps: ["specialfs"] });
    assert.deepEqual(plan.activationScripts.users, { deps: ["agenixdUsers"] });
    assert.ok(plan.activationScripts.agenix!.deps.includes("agenixdUsers"));
    assert.equal(plan.needsActivationScripts, true, "the one configuration that needs an activation script");
  });

  test("perl activation's users phase: in a transient unit that may not swap when systemd runs and swap is on (a switch), directly otherwise (boot)", () => {
    const dir = mkdtempSync(join(scratch, "users-phase-"));
    const calls = join(dir, "calls");
    const script = (name: string, text: string) => writeFileSync(join(dir, name), `#!/bin/sh\n${text}`, { mode: 0o755 });
    script("agenixd", `echo "agenixd AGENIXD_SYSTEMCTL=$AGENIXD_SYSTEMCTL $*" >> ${calls}\n`);
    script("systemctl", "exit 0\n");
    // Records its options, sets what --setenv= gives, runs the command, as systemd-run --pipe --wait does.
    script("systemd-run", `echo "systemd-run $*" >> ${calls}\nwhile [ $# -gt 0 ]; do case "$1" in --setenv=*) export "\${1#--setenv=}" ;; --*) ;; *) break ;; esac; shift; done\nexec "$@"\n`);
    const swapsOff = join(dir, "swaps-off");
    const swapsOn = join(dir, "swaps-on");
    writeFileSync(swapsOff, "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n");
    writeFileSync(swapsOn, "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/vda2                               partition\t4194300\t\t0\t\t-2\n");
    const plan = unitOf({ ...base, agenixd: join(dir, "agenixd"), systemctl: join(dir, "systemctl"), usersPhase: true });
    const text = plan.activationScripts.agenixdUsers!.text!;
    const command = `activate --manifest ${base.manifest} --phase users`;
    // In a mount namespace of its own: /proc/swaps and /run as given, the machine's untouched.
    const run = (swaps: string, systemd: boolean) => {
      rmSync(calls, { force: true });
      const setup = `mount --bind ${swaps} /proc/swaps && mount -t tmpfs tmpfs /run && ${systemd ? "mkdir -p /run/systemd/system" : "true"}`;
      const r = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", `${setup} && exec bash -euc "$0"`, text], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      return readFileSync(calls, "utf8");
    };
    assert.equal(
      run(swapsOn, true),
      `systemd-run --quiet --pipe --wait --collect --service-type=exec --property=MemorySwapMax=0 --property=LimitCORE=0 --property=RuntimeMaxSec=3min --setenv=AGENIXD_SYSTEMCTL=${join(dir, "systemctl")} ${join(dir, "agenixd")} ${command}\n` +
        `agenixd AGENIXD_SYSTEMCTL=${join(dir, "systemctl")} ${command}\n`,
    );
    for (const [swaps, systemd] of [[swapsOff, true], [swapsOn, false], [swapsOff, false]] as const) {
      assert.equal(run(swaps, systemd), `agenixd AGENIXD_SYSTEMCTL=${join(dir, "systemctl")} ${command}\n`, `swap ${swaps === swapsOn ? "on" : "off"}, systemd ${systemd ? "running" : "not yet"}`);
    }
  });

  for (const [mode, usersUnit] of [
    ["sysusers", "systemd-sysusers.service"],
    ["userborn", "userborn.service"],
  ] as const) {
    test(`${mode}: agenixd.service after ${usersUnit}; no early unit without password secrets`, () => {
      const plan = unitOf({ ...base, userManagement: mode });
      assert.deepEqual(Object.keys(plan.services), ["agenixd"]);
      assert.deepEqual(plan.services.agenixd!.after, ["local-fs.target", usersUnit]);
      assert.deepEqual(plan.activationScripts, { agenix: { text: "", deps: ["specialfs"] } });
      assert.equal(plan.needsActivationScripts, false);
    });

    test(`${mode} with password secrets: agenixd-users.service before ${usersUnit} and agenixd.service`, () => {
      const plan = unitOf({ ...base, userManagement: mode, usersPhase: true });
      assert.deepEqual(Object.keys(plan.services).sort(), ["agenixd", "agenixd-users"]);
      const early = plan.services["agenixd-users"]!;
      assert.equal(early.serviceConfig.ExecStart, `${activate} --phase users`);
      assert.equal(early.serviceConfig.Type, "notify");
      assert.equal(early.unitConfig.DefaultDependencies, false);
      assert.deepEqual(early.unitConfig.RequiresMountsFor, base.identityPaths);
      for (const unit of [usersUnit, "agenixd.service", "sysinit.target", "sysinit-reactivation.target"]) {
        assert.ok(early.before.includes(unit), `Before= lacks ${unit}`);
      }
      assert.ok(early.wantedBy.includes(usersUnit));
      assert.deepEqual(early.requiredBy, ["sysinit-reactivation.target"]);
      assert.deepEqual(plan.services.agenixd!.after, ["local-fs.target", usersUnit, "agenixd-users.service"]);
      assert.equal(plan.activationScripts.agenixdUsers, undefined);
      assert.equal(plan.activationScripts.users, undefined, `${mode} asserts system.activationScripts.users == ""`);
      assert.equal(plan.needsActivationScripts, false, "boots with no activation script run, as under nixos-init");
    });
  }

  test("refuses an unknown user manager", () => {
    assert.throws(() => unitOf({ ...base, userManagement: "homed" }), /userManagement must be "perl", "sysusers" or "userborn", not "homed"/);
  });

  test("renders agenixd.service as NixOS would write it", () => {
    const plan = unitOf({ ...base, userManagement: "userborn", usersPhase: true });
    assert.deepEqual(Object.keys(plan.unitFiles).sort(), ["agenixd-users.service", "agenixd.service"]);
    assert.equal(
      plan.unitFiles["agenixd.service"],
      [
        "[Unit]",
        "After=local-fs.target userborn.service agenixd-users.service",
        "Before=sysinit.target sysinit-reactivation.target shutdown.target",
        "Conflicts=shutdown.target",
        "DefaultDependencies=false",
        "Description=Install agenix secrets",
        "PartOf=sysinit-reactivation.target",
        "RequiresMountsFor=/persist/etc/ssh/ssh_host_ed25519_key",
        "",
        "[Service]",
        "X-RestartIfChanged=false",
        "CapabilityBoundingSet=CAP_SYS_ADMIN",
        "CapabilityBoundingSet=CAP_CHOWN",
        "CapabilityBoundingSet=CAP_FOWNER",
        "CapabilityBoundingSet=CAP_DAC_OVERRIDE",
        "CapabilityBoundingSet=CAP_FSETID",
        "DevicePolicy=closed",
        `ExecStart=${activate}`,
        "IPAddressDeny=any",
        "LimitCORE=0",
        "LockPersonality=true",
        "MemoryHigh=768M",
        "MemoryMax=1G",
        "MemorySwapMax=0",
        "NoNewPrivileges=true",
        "ProtectClock=true",
        "ProtectHostname=true",
        "RemainAfterExit=true",
        "RestrictAddressFamilies=AF_UNIX",
        "RestrictNamespaces=true",
        "RestrictRealtime=true",
        "SystemCallArchitectures=native",
        "SystemCallErrorNumber=EPERM",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=@mount",
        "SystemCallFilter=@pkey",
        "TimeoutStartSec=3min",
        "Type=notify",
        "UMask=0077",
        "",
        "[Install]",
        "WantedBy=sysinit.target",
        "",
      ].join("\n"),
    );
  });

  test("each rendered unit file says what the structured settings say", () => {
    const plan = unitOf({ ...base, identityPaths: ["/a", "/b"], userManagement: "sysusers", usersPhase: true });
    for (const [name, service] of Object.entries(plan.services)) {
      const file = parseUnitFile(plan.unitFiles[`${name}.service`]!);
      assert.deepEqual(file.Unit, {
        Description: [service.description],
        Conflicts: [service.conflicts.join(" ")],
        PartOf: [service.partOf.join(" ")],
        After: [service.after.join(" ")],
        Before: [service.before.join(" ")],
        DefaultDependencies: ["false"],
        // A list in unitConfig is one line per element, as NixOS writes it.
        RequiresMountsFor: ["/a", "/b"],
      });
      assert.deepEqual(file.Service!.ExecStart, [service.serviceConfig.ExecStart]);
      assert.deepEqual(file.Service!["X-RestartIfChanged"], ["false"]);
      assert.equal(file.Service!.Environment, undefined);
      // NixOS writes only WantedBy; it makes the .requires links and aliases itself.
      assert.deepEqual(file.Install, { WantedBy: [service.wantedBy.join(" ")] });
    }
  });

  test("leaves out empty settings (an empty `Key=` would reset it in systemd)", () => {
    const plan = unitOf({ ...base, identityPaths: [] });
    assert.doesNotMatch(plan.unitFiles["agenixd.service"]!, /RequiresMountsFor/);
  });

  test("systemd-analyze verify accepts the rendered units", (t) => {
    if (spawnSync("systemd-analyze", ["--version"]).error) return t.skip("systemd-analyze not installed");
    const dir = join(scratch, "units");
    execFileSync("mkdir", ["-p", dir]);
    const manifest = join(scratch, "manifest.json");
    writeFileSync(manifest, "{}\n");
    // Real executables and files, so verify checks the settings rather than missing paths.
    const plan = unitOf({ agenixd: "/bin/true", manifest, identityPaths: ["/etc/hostname"], userManagement: "sysusers", usersPhase: true });
    const files = Object.entries(plan.unitFiles).map(([name, text]) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    });
    const r = spawnSync("systemd-analyze", ["verify", "--man=no", ...files], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), "", r.stderr);
  });
});

describe("nix/unit-file.nix", nix, () => {
  const render = (service: unknown) => nixEval(`import ${nixDir}/unit-file.nix arg`, service) as string;

  test("writes what nixos/lib/systemd-lib.nix writes for the switch settings, environment and lists", () => {
    assert.equal(
      render({
        description: "d",
        wantedBy: ["multi-user.target"],
        requiredBy: ["x.target"],
        aliases: ["alias.service"],
        after: ["a.service", "b.service"],
        environment: { PATH: "/bin", QUOTED: 'say "hi"', UNSET: null },
        stopIfChanged: false,
        reloadIfChanged: true,
        unitConfig: { RequiresMountsFor: ["/p", "/q"], X: true },
        serviceConfig: { ExecStart: "/bin/true", Restart: "no" },
      }),
      [
        "[Unit]",
        "After=a.service b.service",
        "Description=d",
        "RequiresMountsFor=/p",
        "RequiresMountsFor=/q",
        "X=true",
        "",
        "[Service]",
        'Environment="PATH=/bin"',
        'Environment="QUOTED=say \\"hi\\""',
        "X-ReloadIfChanged=true",
        "X-StopIfChanged=false",
        "ExecStart=/bin/true",
        "Restart=no",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
      ].join("\n"),
    );
  });

  test("X-RestartIfChanged=false only when the unit is not reloaded instead, and no [Install] without wantedBy", () => {
    assert.equal(render({ restartIfChanged: false }), "[Unit]\n\n[Service]\nX-RestartIfChanged=false\n");
    assert.equal(render({ restartIfChanged: false, reloadIfChanged: true }), "[Unit]\n\n[Service]\nX-ReloadIfChanged=true\n");
  });
});

/** Minimal unit-file reader: section -> key -> values in order. */
function parseUnitFile(text: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {};
  let current: Record<string, string[]> | undefined;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      current = sections[header[1]!] = {};
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(current && eq > 0, `malformed line: ${line}`);
    (current[line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return sections;
}

describe("vm-tests without nixpkgs", nix, () => {
  const vmTests = join(root, "vm-tests");
  const evalStandIns = () => {
    const r = spawnSync("nix-instantiate", ["--store", "dummy://", "--eval", "--strict", "--json", join(vmTests, "stand-ins.nix")], { encoding: "utf8", env: nixEnv });
    if (r.status !== 0) throw new NixError(r.stderr);
    return r.stdout;
  };
  type StandIns = Record<string, { name: string; testScript: string; nodes: Record<string, { failedAssertions: string[]; warnings: string[]; specialisations: string[] }> }>;
  const checkSteps = (json: string) => spawnSync("python3", [join(vmTests, "check-steps.py")], { input: json, encoding: "utf8" });

  test("one VM test per scenario, each machine accepted as nixpkgs would, no activation script but perl's password phase and age.dryActivate's", () => {
    const tests = JSON.parse(evalStandIns()) as StandIns;
    const scenarios = readdirSync(join(vmTests, "scenarios")).map((f) => f.replace(/\.json$/, "")).sort();
    assert.deepEqual(Object.keys(tests).sort(), scenarios);
    for (const [name, t] of Object.entries(tests)) {
      for (const [machine, m] of Object.entries(t.nodes)) {
        assert.deepEqual(m.failedAssertions, [], `${name} on ${machine}`);
        const deprecated = (script: string) => `system.activationScripts.${script} is deprecated (nixpkgs #475305): it has a body and NixOS does not define it`;
        // The restart scenario sets age.dryActivate, whose snippet nixpkgs warns about.
        const expected = name === "password" && machine === "perl" ? [deprecated("agenixdUsers")] : name === "restart" ? [deprecated("agenixdDryActivate")] : [];
        assert.deepEqual(m.warnings, expected, `${name} on ${machine}`);
      }
    }
  });

  test("every test script runs against a stand-in of the driver that keeps its rules (steps.py)", () => {
    const r = checkSteps(evalStandIns());
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  test("the driver stand-in catches a start without allow_reboot before a reboot (\"Shell disconnected\")", () => {
    const json = evalStandIns();
    assert.ok(json.includes("machine.start(allow_reboot=True)"));
    const r = checkSteps(json.replaceAll("machine.start(allow_reboot=True)", "machine.start()"));
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stdout, /FAILED reboot:[\s\S]*RuntimeError: Shell disconnected/);
  });

  const checks = (args: Record<string, unknown>) =>
    nixEval(`import ${vmTests}/nixpkgs-checks.nix arg`, {
      users: {},
      sysusers: false,
      userborn: false,
      systemdInitrd: false,
      activationScripts: {},
      ...args,
    }) as { assertions: string[]; warnings: string[] };
  const user = (extra: Record<string, unknown> = {}) => ({ isNormalUser: false, isSystemUser: true, uid: 1000, group: "users", hashedPasswordFile: "/run/agenix/p", ...extra });

  test("nixpkgs' assertions: sysusers refuses normal users, which perl activation and userborn accept", () => {
    const normal = { user1: user({ isNormalUser: true, isSystemUser: false }) };
    assert.deepEqual(checks({ users: normal, sysusers: true }).assertions, ["user1 is a normal user. systemd-sysusers doesn't create normal users, only system users."]);
    assert.deepEqual(checks({ users: normal, userborn: true }).assertions, []);
    assert.deepEqual(checks({ users: normal }).assertions, []);
    assert.deepEqual(checks({ users: { user1: user() }, sysusers: true }).assertions, []);
  });

  test("nixpkgs' assertions: no users activation script under sysusers or userborn, not both, initrd requirements", () => {
    const usersDeps = { users: { deps: ["agenixdUsers"] } };
    assert.deepEqual(checks({ sysusers: true, activationScripts: usersDeps }).assertions, ["system.activationScripts.users has to be empty to use systemd-sysusers"]);
    assert.deepEqual(checks({ userborn: true, activationScripts: usersDeps }).assertions, ["system.activationScripts.users has to be empty to use userborn"]);
    assert.deepEqual(checks({ activationScripts: usersDeps }).assertions, []);
    assert.ok(checks({ sysusers: true, userborn: true }).assertions.includes("You cannot use systemd-sysusers and Userborn at the same time"));
    assert.deepEqual(checks({ nixosInit: true }).assertions, ["nixos-init can only be used with systemd initrd"]);
    assert.deepEqual(checks({ etcOverlay: true }).assertions, ["`system.etc.overlay.enable` requires `boot.initrd.systemd.enable`"]);
    assert.deepEqual(checks({ users: { u: user({ isSystemUser: false, uid: 1000 }) } }).assertions, ["Exactly one of users.users.u.isSystemUser and users.users.u.isNormalUser must be set."]);
  });

  test("a non-empty activation script NixOS does not define warns (nixpkgs #475305); empty ones only order", () => {
    const r = checks({ activationScripts: { agenix: { text: "", deps: ["users"] }, mine: { text: "echo hi" }, etc: { text: "x" } } });
    assert.deepEqual(r.warnings, ["system.activationScripts.mine is deprecated (nixpkgs #475305): it has a body and NixOS does not define it"]);
  });
});

describe("nix/package.nix", nix, () => {
  // Without nixpkgs the derivation cannot be built (test/package-build.test.ts runs its phases);
  // called with stand-ins, it still shows what bin/agenixd is made of: the launcher template with
  // every @value@ filled in, the V8 flags and glibc tunables from package.json.
  const installPhase = () =>
    nixEval(`
      let
        lib = {
          importJSON = p: builtins.fromJSON (builtins.readFile p);
          fileset = { toSource = _: "src"; unions = _: null; };
          getExe = p: "/\${p.name}/bin/\${p.name}";
          escapeShellArg = s: "'" + s + "'";
          licenses.mit = null;
          optional = c: x: if c then [ x ] else [ ];
        };
        pkg = name: { inherit name; };
        package = import ${nixDir}/package.nix {
          inherit lib;
          stdenv.mkDerivation = attrs: attrs;
          callPackage = _: _: "/npm-deps";
          nodejs_24 = pkg "node"; nodejs-slim_24 = pkg "node-slim"; python3 = pkg "python3"; dash = pkg "dash"; makeBinaryWrapper = pkg "makeBinaryWrapper";
        };
      in package.installPhase`) as string;

  test("bin/agenixd is the launcher, run by dash, with the V8 flags the snapshot was built with and package.json's glibc tunables", () => {
    const { config } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { config: { glibcTunables: string; snapshotNodeFlags: string } };
    const script = installPhase();
    assert.match(script, /substitute scripts\/agenixd-launcher\.sh \$out\/bin\/agenixd/);
    assert.ok(script.includes(`--subst-var-by snapshotNodeFlags '${config.snapshotNodeFlags}'`), script);
    assert.ok(script.includes(`--subst-var-by glibcTunables '${config.glibcTunables}'`), script);
    assert.ok(script.includes("--subst-var-by shell /dash/bin/dash"), script);
    assert.ok(script.includes("--subst-var-by node /node-slim/bin/node-slim"), script); // node without npm
    // Every placeholder of the template is filled in, and nothing else is.
    const template = readFileSync(join(root, "scripts", "agenixd-launcher.sh"), "utf8");
    const wanted = [...new Set([...template.matchAll(/@([A-Za-z]+)@/g)].map((m) => m[1]))].sort();
    const given = [...script.matchAll(/--subst-var-by ([A-Za-z]+) /g)].map((m) => m[1]).sort();
    assert.deepEqual(given, wanted);
  });
});

