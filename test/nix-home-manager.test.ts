// The Home Manager module (nix/home-manager.nix) under nixpkgs' lib.evalModules, with stand-ins for
// the Home Manager options it touches (nix/tests/eval-home-manager.nix). Needs NIXPKGS_LIB, as
// test/nix-module.test.ts does; without it the evaluation is skipped with the reason, never silently.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NixError, nixEval, nixSuite } from "./helpers/nix.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const given = process.env.NIXPKGS_LIB;
const libDir = given === undefined ? undefined : existsSync(join(given, "lib", "modules.nix")) ? join(given, "lib") : given;
const skip = nixSuite().skip ?? (libDir === undefined ? "NIXPKGS_LIB is not set, so the Home Manager module evaluation did not run (see test/nix-module.test.ts for how to get nixpkgs' lib)" : undefined);

function evalHM(configBody: string): Record<string, any> {
  return nixEval(`import ${root}nix/tests/eval-home-manager.nix { lib = import ${libDir}; config = { config, ... }: { home.username = "alice"; home.homeDirectory = "/home/alice"; ${configBody} }; }`) as Record<string, any>;
}

describe("Home Manager module", { skip }, () => {
  test("agenix's option names and user-level defaults; the manifest keeps ${XDG_RUNTIME_DIR} for agenixd --user to expand", () => {
    const r = evalHM(`age.secrets.token.file = "/nix/store/x-token.age";`);
    assert.deepEqual(r.assertions, []);
    assert.deepEqual(r.identityPaths, ["/home/alice/.ssh/id_ed25519", "/home/alice/.ssh/id_rsa"]);
    assert.equal(r.secretsDir, "${XDG_RUNTIME_DIR}/agenix");
    assert.deepEqual(r.secrets.token, { path: "${XDG_RUNTIME_DIR}/agenix/token", mode: "0400", symlink: true });
    assert.equal(r.manifest.secretsMountPoint, "${XDG_RUNTIME_DIR}/agenix.d");
    assert.equal(r.manifest.secrets[0].path, "${XDG_RUNTIME_DIR}/agenix/token");
    assert.match(r.service.Service.ExecStart, /\/bin\/agenixd activate --user --manifest \/nix\/store\/[0-9a-f]{32}-agenixd-home-manifest\.json$/);
    assert.equal(r.service.Service.Type, "notify");
    assert.deepEqual(r.service.Install.WantedBy, ["default.target"]);
  });

  test("age.uid makes every default path absolute: /run/user/<uid>/agenix/<name>", () => {
    const r = evalHM(`age.uid = 1000; age.secrets.token.file = "/nix/store/x-token.age";`);
    assert.equal(r.secrets.token.path, "/run/user/1000/agenix/token");
    assert.equal(r.manifest.secretsDir, "/run/user/1000/agenix");
  });

  test("the Tabby case: a template rendered from the token, mode 0600, a user unit ordered after agenixd and restarted", () => {
    const r = evalHM(`
      age.secrets.tabby-token = { file = "/nix/store/x-token.age"; restartUnits = [ "tabby-agent.service" ]; };
      age.templates.tabby-config = { content = "token = \\"\${config.age.placeholder.tabby-token}\\"\\n"; path = "/home/alice/.tabby-client/agent/config.toml"; mode = "0600"; symlink = false; restartUnits = [ "tabby-agent.service" ]; };`);
    assert.deepEqual(r.assertions, []);
    const [t] = r.manifest.templates;
    assert.equal(t.path, "/home/alice/.tabby-client/agent/config.toml");
    assert.equal(t.mode, "0600");
    assert.equal(t.symlink, false);
    assert.deepEqual(r.service.Unit.Before, ["tabby-agent.service"]);
    assert.equal(r.manifest.secrets[0].placeholder, r.placeholder["tabby-token"]);
  });

  test("configuration problems are the NixOS module's checks, naming the option", () => {
    assert.throws(() => evalHM(`age.secrets.token = { file = "/nix/store/x.age"; path = "relative/token"; };`), (e: unknown) => e instanceof NixError && /must be an absolute path/.test(e.message));
  });

  test("age.uid defaults to Home Manager's home.uid (which its NixOS module sets from users.users.<name>.uid)", () => {
    const r = evalHM(`home.uid = 1001; age.secrets.token.file = "/nix/store/x-token.age";`);
    assert.equal(r.secrets.token.path, "/run/user/1001/agenix/token");
    assert.equal(evalHM(`age.secrets.token.file = "/nix/store/x-token.age";`).secrets.token.path, "${XDG_RUNTIME_DIR}/agenix/token");
  });

  test("a template or secret at a path home.file also links is refused, naming both", () => {
    const r = evalHM(`
      age.secrets.token.file = "/nix/store/x-token.age";
      age.templates.tabby = { content = "x"; path = "/home/alice/.tabby-client/agent/config.toml"; };
      age.secrets.netrc = { file = "/nix/store/x-netrc.age"; path = "/home/alice/.netrc"; };
      home.file.old-tabby = { target = "/home/alice/.tabby-client/agent/config.toml"; text = "token = old"; };
      home.file.".netrc".text = "machine x";
      home.file.".unrelated".text = "y";`);
    assert.equal(r.assertions.length, 2);
    assert.match(r.assertions[0], /^age\.secrets\.netrc\.path is \/home\/alice\/\.netrc, which Home Manager also links from home\.file \("\.netrc"\)/);
    assert.match(r.assertions[1], /^age\.templates\.tabby\.path is \/home\/alice\/\.tabby-client\/agent\/config\.toml, .*Remove the home\.file entry/);
    // A disabled home.file entry is not linked.
    const off = evalHM(`age.secrets.netrc = { file = "/nix/store/x-netrc.age"; path = "/home/alice/.netrc"; }; home.file.".netrc" = { text = "x"; enable = false; };`);
    assert.deepEqual(off.assertions, []);
  });

  test("no secret, no service", () => {
    assert.equal(evalHM("").service, null);
  });
});
