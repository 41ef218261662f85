// The Home Manager module inside Home Manager's own module system (nix/tests/eval-home-manager-upstream.nix):
// its core modules, option types and checks, and the unit file its systemd.nix renders for
// `home-manager switch` to link. Needs a Home Manager tree (HOME_MANAGER_SRC) and a nixpkgs tree
// (NIXPKGS_SRC: Home Manager imports lib/ and nixos/modules/misc/{assertions,meta}.nix from it);
// without them the evaluation is skipped with the reason, never silently.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { NixError, nixEval, nixSuite } from "./helpers/nix.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const homeManager = process.env.HOME_MANAGER_SRC;
const nixpkgs = process.env.NIXPKGS_SRC;

function missing(): string | undefined {
  if (homeManager === undefined || nixpkgs === undefined)
    return (
      "HOME_MANAGER_SRC and NIXPKGS_SRC are not both set, so the evaluation inside Home Manager's own module system did not run. " +
      "Set HOME_MANAGER_SRC to a home-manager checkout and NIXPKGS_SRC to a nixpkgs checkout (of nixpkgs it reads only lib/, " +
      "nixos/modules/misc/assertions.nix, nixos/modules/misc/meta.nix and modules/generic/meta-maintainers.nix), then run " +
      "npm run test:file build/test/nix-home-manager-upstream.test.js"
    );
  for (const [name, file] of [
    ["HOME_MANAGER_SRC", join(homeManager, "modules", "modules.nix")],
    ["NIXPKGS_SRC", join(nixpkgs, "lib", "modules.nix")],
    ["NIXPKGS_SRC", join(nixpkgs, "nixos", "modules", "misc", "assertions.nix")],
  ] as const)
    assert.ok(existsSync(file), `${name} has no ${file}`);
  return undefined;
}
const skip = nixSuite().skip ?? missing();

function evalHM(configBody: string): Record<string, any> {
  return nixEval(
    `import ${root}nix/tests/eval-home-manager-upstream.nix { lib = import ${nixpkgs}/lib; homeManager = ${homeManager}; nixpkgs = ${nixpkgs}; ` +
      `config = { config, ... }: { home.username = "alice"; home.homeDirectory = "/home/alice"; home.stateVersion = "25.05"; ${configBody} }; }`,
  ) as Record<string, any>;
}

const lines = (text: string) => text.split("\n");

describe("Home Manager module, inside Home Manager's module system", { skip }, () => {
  test("Home Manager's checks accept it, and the unit file its systemd.nix writes is agenixd's notify service, wanted by default.target", () => {
    const r = evalHM(`age.secrets.token.file = "/nix/store/x-token.age";`);
    assert.deepEqual(r.assertions, []);
    assert.deepEqual(r.warnings, []);
    assert.ok(r.units.includes("systemd/user/agenixd.service"));
    assert.ok(r.units.includes("systemd/user/default.target.wants/agenixd.service"));
    const unit = lines(r.unitText);
    for (const line of ["[Service]", "Type=notify", "NotifyAccess=all", "RemainAfterExit=true", "UMask=0077", "[Install]", "WantedBy=default.target"])
      assert.ok(unit.includes(line), `${line} in\n${r.unitText}`);
    const execStart = unit.filter((l) => l.startsWith("ExecStart="));
    assert.equal(execStart.length, 1);
    assert.match(execStart[0]!, /^ExecStart=\/nix\/store\/\S+-agenixd-1\/bin\/agenixd activate --user --manifest \/nix\/store\/[0-9a-f]{32}-agenixd-home-manifest\.json$/);
    assert.equal(r.manifest.secrets[0].path, "${XDG_RUNTIME_DIR}/agenix/token");
  });

  test("a changed secret changes the unit file, so home-manager switch restarts agenixd; an unchanged one does not", () => {
    const a = evalHM(`age.secrets.token.file = "/nix/store/x-token.age";`).unitText;
    const same = evalHM(`age.secrets.token.file = "/nix/store/x-token.age";`).unitText;
    const changed = evalHM(`age.secrets.token.file = "/nix/store/y-token.age";`).unitText;
    assert.equal(same, a);
    assert.notEqual(changed, a);
  });

  test("the Tabby case: agenixd.service is ordered before the agent Home Manager declares, and the template's path is a file of its own", () => {
    const r = evalHM(`
      age.secrets.tabby-token = { file = "/nix/store/x-token.age"; restartUnits = [ "tabby-agent.service" ]; };
      age.templates.tabby-config = {
        content = "[server]\\ntoken = \\"\${config.age.placeholder.tabby-token}\\"\\n";
        path = "\${config.home.homeDirectory}/.tabby-client/agent/config.toml";
        mode = "0600";
        symlink = false;
        restartUnits = [ "tabby-agent.service" ];
      };
      systemd.user.services.tabby-agent = {
        Unit.After = [ "agenixd.service" ];
        Service.ExecStart = "/nix/store/00000000000000000000000000000000-tabby-agent-1/bin/tabby-agent";
        Install.WantedBy = [ "default.target" ];
      };`);
    assert.deepEqual(r.assertions, []);
    assert.ok(lines(r.unitText).includes("Before=tabby-agent.service"), r.unitText);
    assert.ok(lines(r.tabbyUnitText).includes("After=agenixd.service"));
    const [t] = r.manifest.templates;
    assert.equal(t.path, "/home/alice/.tabby-client/agent/config.toml");
    assert.equal(t.mode, "0600");
    assert.doesNotMatch(JSON.stringify(r.manifest), /auth_/);
  });

  test("home.uid, as Home Manager's NixOS module sets it from users.users.<name>.uid, makes every default path absolute", () => {
    const r = evalHM(`home.uid = 1000; age.secrets.token.file = "/nix/store/x-token.age";`);
    assert.equal(r.secretsDir, "/run/user/1000/agenix");
    assert.equal(r.secrets.token.path, "/run/user/1000/agenix/token");
    assert.equal(r.manifest.secretsMountPoint, "/run/user/1000/agenix.d");
  });

  test("the old hard-coded home.file and the template at the same path: refused by Home Manager's own assertion check", () => {
    const r = evalHM(`
      age.secrets.tabby-token.file = "/nix/store/x-token.age";
      age.templates.tabby-config = { content = "token = x"; path = "/home/alice/.tabby-client/agent/config.toml"; };
      home.file.".tabby-client/agent/config.toml".text = "token = \\"auth_0123\\"";`);
    assert.equal(r.assertions.length, 1);
    assert.match(r.assertions[0], /^age\.templates\.tabby-config\.path is \/home\/alice\/\.tabby-client\/agent\/config\.toml, which Home Manager also links from home\.file \("\.tabby-client\/agent\/config\.toml"\)/);
    // xdg.configFile entries are home.file entries too.
    const x = evalHM(`
      age.secrets.gh = { file = "/nix/store/x-gh.age"; path = "/home/alice/.config/gh/hosts.yml"; symlink = false; };
      xdg.configFile."gh/hosts.yml".text = "oauth_token: old";`);
    assert.equal(x.assertions.length, 1);
    assert.match(x.assertions[0], /^age\.secrets\.gh\.path is \/home\/alice\/\.config\/gh\/hosts\.yml/);
  });

  test("a wrong option value is Home Manager's type error, naming the option", () => {
    assert.throws(() => evalHM(`age.secrets.token = { file = "/nix/store/x.age"; symlink = "yes"; };`), (e: unknown) => e instanceof NixError && /age\.secrets\.token\.symlink/.test(e.message));
  });
});
