// What the boot harness boots for a scenario: its configurations (harness/scenario.ts) and the
// manifest, template texts and dry-activate script harness/system.nix makes of them with the
// module's own nix/manifest.nix. The placeholders in a template's text must be the contract's
// (`<agenixd:${sha256hex(attr)}:placeholder>`, docs/manifest.md), computed here independently.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { configurations, type Scenario } from "../harness/scenario.js";
import { nixInstantiate, nixSuite, NixError } from "./helpers/nix.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const placeholder = (attr: string) => `<agenixd:${createHash("sha256").update(attr).digest("hex")}:placeholder>`;

describe("configurations", () => {
  const scenario: Scenario = {
    name: "t",
    description: "",
    credstore: true,
    dryActivate: true,
    secrets: { a: { content: "a1", restartUnits: ["x.service"] }, b: { content: "b1" } },
    templates: { t: { content: "{{a}}" }, u: { content: "{{b}}" } },
    specialisations: {
      spec: { secrets: { a: { content: "a2" } }, templates: { t: { content: "new {{a}}" } }, credstore: false },
      plain: { rebuiltPackage: true },
    },
    steps: [],
  };

  test("a specialisation replaces the secrets and templates it gives, keeps the others, and may set credstore", () => {
    const c = configurations(scenario);
    assert.deepEqual(Object.keys(c).sort(), ["base", "plain", "spec"]);
    assert.deepEqual(c.spec!.secrets, { a: { content: "a2" }, b: { content: "b1" } });
    assert.deepEqual(c.spec!.templates, { t: { content: "new {{a}}" }, u: { content: "{{b}}" } });
    assert.equal(c.spec!.credstore, false);
    assert.equal(c.plain!.credstore, true);
    assert.deepEqual(c.plain!.templates, scenario.templates);
    assert.equal(c.plain!.rebuiltPackage, true);
    // age.dryActivate is the scenario's, in every configuration.
    assert.ok(Object.values(c).every((cfg) => cfg.dryActivate));
  });
});

interface Evaluated {
  manifestPath: string;
  manifest: {
    credstore: string | null;
    secrets: { name: string; credential: boolean; trim: boolean; restartUnits: string[]; reloadUnits: string[]; placeholder: string }[];
    templates: { name: string; file: string; path: string; owner: string; group: string; mode: string; restartUnits: string[] }[];
  };
  storeFiles: Record<string, string>;
  dryActivate: string | null;
}

describe("harness/system.nix", nixSuite(), () => {
  const machine = (cfg: Record<string, unknown>) => ({
    systemctl: "/usr/bin/systemctl",
    path: "/usr/lib/agenixd-harness/service-path",
    userManagement: "sysusers",
    identityPaths: ["/etc/ssh/ssh_host_ed25519_key"],
    users: { tabby: { group: "tabbies" } },
    configurations: { base: { agenixd: "/opt/agenixd/bin/agenixd", credstore: false, dryActivate: false, templates: {}, secrets: {}, ...cfg } },
  });
  const evaluate = (cfg: Record<string, unknown>) =>
    (JSON.parse(nixInstantiate(["--eval", "--strict", "--json", "--argstr", "json", JSON.stringify(machine(cfg)), join(root, "harness", "system.nix")])) as Record<string, Evaluated>).base!;

  test("{{attr}} becomes the secret's placeholder in the template's store file, which the manifest names", () => {
    const r = evaluate({
      secrets: { "tabby-token": { file: "/nix/store/x-tabby-token.age", trim: true }, raw: { file: "/nix/store/x-raw.age" } },
      templates: { tabby: { name: "tabby/config.toml", content: 'token = "{{tabby-token}}"\n{{raw}}{{raw}}|{ {raw}}\n', owner: "tabby", restartUnits: ["tabby.service"] } },
    });
    const [template] = r.manifest.templates;
    assert.ok(template);
    assert.deepEqual(Object.keys(r.storeFiles), [template.file]);
    assert.match(template.file, /^\/nix\/store\/[0-9a-z]{32}-agenixd-template-tabby-config\.toml$/);
    assert.equal(r.storeFiles[template.file], `token = "${placeholder("tabby-token")}"\n${placeholder("raw")}${placeholder("raw")}|{ {raw}}\n`);
    // The module's defaults: the rendered path, the owner's group, 0400.
    assert.deepEqual(
      { path: template.path, owner: template.owner, group: template.group, mode: template.mode, restartUnits: template.restartUnits },
      { path: "/run/agenix/rendered/tabby/config.toml", owner: "tabby", group: "tabbies", mode: "0400", restartUnits: ["tabby.service"] },
    );
    const secrets = Object.fromEntries(r.manifest.secrets.map((s) => [s.name, s]));
    assert.equal(secrets["tabby-token"]!.placeholder, placeholder("tabby-token"));
    assert.equal(secrets["tabby-token"]!.trim, true);
    assert.equal(secrets.raw!.trim, false);
  });

  test("a template naming a secret the configuration lacks is refused, naming both", () => {
    assert.throws(
      () => evaluate({ secrets: { a: { file: "/nix/store/x-a.age" } }, templates: { t: { content: "{{b}}" } } }),
      (e: Error) => e instanceof NixError && /template t names \{\{b\}\}, which is no secret of this configuration/.test(e.message),
    );
  });

  test("credstore makes every secret a credential unless it says otherwise; restartUnits and reloadUnits pass through", () => {
    const r = evaluate({
      credstore: true,
      secrets: { a: { file: "/nix/store/x-a.age", restartUnits: ["a.service"], reloadUnits: ["b.service"] }, b: { file: "/nix/store/x-b.age", credential: false } },
    });
    assert.equal(r.manifest.credstore, "/run/credstore");
    assert.deepEqual(r.manifest.secrets.map((s) => [s.name, s.credential, s.restartUnits, s.reloadUnits]), [
      ["a", true, ["a.service"], ["b.service"]],
      ["b", false, [], []],
    ]);
    const without = evaluate({ secrets: { a: { file: "/nix/store/x-a.age", credential: true } } });
    assert.equal(without.manifest.credstore, "/run/credstore");
    assert.equal(evaluate({ secrets: { a: { file: "/nix/store/x-a.age" } } }).manifest.credstore, null);
  });

  test("dryActivate gives the configuration a dry-activate script that runs agenixd's dry run on its own manifest", () => {
    const r = evaluate({ dryActivate: true, secrets: { a: { file: "/nix/store/x-a.age" } } });
    assert.equal(
      r.dryActivate,
      `#!/bin/sh\nif [ "\${NIXOS_ACTION-}" = dry-activate ]; then\n` +
        "  /usr/bin/systemd-run --quiet --pipe --wait --collect --service-type=exec --property=MemorySwapMax=0 --property=LimitCORE=0 --property=RuntimeMaxSec=3min " +
        `--setenv=AGENIXD_SYSTEMCTL=/usr/bin/systemctl --setenv=NIXOS_ACTION=dry-activate /opt/agenixd/bin/agenixd activate --dry-run --manifest ${r.manifestPath}\nfi\n`,
    );
    assert.equal(evaluate({ secrets: { a: { file: "/nix/store/x-a.age" } } }).dryActivate, null);
  });
});
