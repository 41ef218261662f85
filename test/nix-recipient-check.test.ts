// nix/recipient-check.nix under nixpkgs' lib.evalModules (nix/tests/eval-module.nix): which
// secrets go into the system.checks derivation, and its build script run for real with the
// built agenixd over agenix's example files. Needs NIXPKGS_LIB, as test/nix-module.test.ts.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { nixInstantiate, nixSuite } from "./helpers/nix.js";
import { AGENIXD } from "./helpers/sandbox.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const fixtures = join(root, "test/fixtures/agenix-example");
const SYSTEM1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPJDyIr/FSz1cJdcoW69R+NrWzwGK/+3gJpqD1t8L2zE";
const RUN_WITH_LIB =
  "NIXPKGS_LIB is not set, so the recipient check's module evaluation did not run (it needs nixpkgs' lib; see test/nix-module.test.ts)";

function libDir(): string | undefined {
  const given = process.env.NIXPKGS_LIB;
  if (!given) return undefined;
  return existsSync(join(given, "lib", "default.nix")) ? join(given, "lib") : given;
}

interface Check {
  name: string;
  buildCommand: string;
  secretsJson: string;
  recipients: string;
}

function evalChecks(lib: string, config: string): Check[] {
  const expr = `(import ${root}nix/tests/eval-module.nix { lib = import ${lib}; config = ${config}; }).checks`;
  return JSON.parse(nixInstantiate(["--eval", "--strict", "--json", "-E", expr])) as Check[];
}

/** Runs the derivation's script as the builder would: passAsFile files, $out, the package's bin/agenixd. */
function build(check: Check, pkgDir: string): { status: number | null; stdout: string; stderr: string; out: string } {
  const dir = mkdtempSync("/tmp/agenixd-rc-build-");
  // The store paths of a dummy-store evaluation do not exist: point them back at the fixtures.
  const secrets = (JSON.parse(check.secretsJson) as { name: string; file: string }[]).map((s) => ({ ...s, file: join(fixtures, s.file.replace(/^\/nix\/store\/[^-]+-/, "")) }));
  writeFileSync(join(dir, "secrets.json"), JSON.stringify(secrets));
  writeFileSync(join(dir, "recipients"), check.recipients);
  const script = check.buildCommand.replaceAll("/nix/store/00000000000000000000000000000000-agenixd-0.1.0", pkgDir);
  const out = join(dir, "out");
  const r = spawnSync("bash", ["-euc", script], {
    cwd: dir,
    encoding: "utf8",
    env: { PATH: process.env.PATH, out, recipientsPath: join(dir, "recipients"), secretsJsonPath: join(dir, "secrets.json") },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, out: existsSync(out) ? readFileSync(out, "utf8") : "" };
}

describe("nix/recipient-check.nix", nixSuite(), () => {
  const lib = libDir();
  const pkgDir = mkdtempSync("/tmp/agenixd-rc-pkg-");
  mkdirSync(join(pkgDir, "bin"));
  writeFileSync(join(pkgDir, "bin/agenixd"), `#!/bin/sh\nexec ${process.execPath} ${AGENIXD.join(" ")} "$@"\n`);
  chmodSync(join(pkgDir, "bin/agenixd"), 0o755);

  const config = (secrets: string, extra = "") => `{ ... }: {
    age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
    age.hostPublicKeys = [ "${SYSTEM1}" ];
    ${extra}
    age.secrets = { ${secrets} };
  }`;

  test("no hostPublicKeys, no check; a file outside the store is not checked", (t) => {
    if (!lib) return t.skip(RUN_WITH_LIB);
    assert.deepEqual(evalChecks(lib, `{ ... }: { age.identityPaths = [ "/k" ]; age.secrets.a.file = ${fixtures}/secret1.age; }`), []);
    assert.deepEqual(evalChecks(lib, config(`a.file = "/var/lib/secrets/a.age";`)), []);
  });

  test("the build passes when every secret is for the host and fails naming the one that is not", (t) => {
    if (!lib) return t.skip(RUN_WITH_LIB);
    const [good] = evalChecks(lib, config(`a.file = ${fixtures}/secret1.age; b.file = ${fixtures}/passwordfile-user1.age;`));
    assert.equal(good!.name, "agenixd-recipient-check");
    const ok = build(good!, pkgDir);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.out, /2 file\(s\): 2 ok/);

    const [bad] = evalChecks(lib, config(`a.file = ${fixtures}/secret1.age; "db/password".file = ${fixtures}/secret2.age;`));
    const failed = build(bad!, pkgDir);
    assert.equal(failed.status, 1);
    assert.match(failed.stderr, /^error: db\/password \(.*secret2\.age\): not encrypted to any of the 1 host key/m);
    assert.equal(failed.out, "");
  });

  test("hostPublicKeys defaults to the .pub files environment.etc defines for openssh's host keys", (t) => {
    if (!lib) return t.skip(RUN_WITH_LIB);
    const expr = `(import ${root}nix/tests/eval-module.nix { lib = import ${lib}; config = { lib, ... }: {
      options.environment.etc = lib.mkOption { type = lib.types.attrsOf lib.types.attrs; default = { }; };
      config.services.openssh.enable = true;
      config.environment.etc."ssh/ssh_host_ed25519_key.pub".text = "${SYSTEM1}";
      config.age.secrets.a.file = ${fixtures}/secret2.age;
    }; }).checks`;
    const [check] = JSON.parse(nixInstantiate(["--eval", "--strict", "--json", "-E", expr])) as Check[];
    assert.equal(check!.recipients, `${SYSTEM1}\n`);
    assert.equal(build(check!, pkgDir).status, 1);
  });
});
