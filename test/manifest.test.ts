import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { MANIFEST_FIELDS, parseManifest, ManifestError } from "../src/manifest.js";
import { readAccounts } from "../src/accounts.js";
import { posix } from "node:path";

const base = {
  version: 1,
  secretsDir: "/run/agenix",
  secretsMountPoint: "/run/agenix.d",
  identityPaths: ["/etc/ssh/ssh_host_ed25519_key"],
  keepGenerations: 1,
};
const secret = { name: "db/password", file: "/nix/store/x-db.age", path: "/run/agenix/db/password", mode: "0400", owner: "postgres", group: "postgres", symlink: true };

test("a valid manifest parses, with agenix's defaults for omitted secret fields", () => {
  const m = parseManifest({ ...base, secrets: [secret, { name: "b", file: "/nix/store/y.age" }] });
  assert.equal(m.secrets[0]!.mode, 0o400);
  assert.equal(m.secrets[0]!.neededForUsers, false);
  assert.equal(parseManifest({ ...base, secrets: [{ ...secret, mode: "u=rw,g=r" }] }).secrets[0]!.mode, 0o640, "symbolic, as chmod on 0400");
  assert.deepEqual(
    { ...m.secrets[1] },
    { name: "b", file: "/nix/store/y.age", path: "/run/agenix/b", mode: 0o400, owner: "0", group: "0", symlink: true, neededForUsers: false, restartUnits: [], reloadUnits: [], placeholder: undefined, trim: false, credential: false },
  );
  assert.deepEqual([m.credstore, m.templates], [undefined, []]);
});

const ph = (n: string) => `<agenixd:${n}:placeholder>`;
const v2 = { ...base, version: 2 };
const tmpl = { name: "tabby/config.toml", file: "/nix/store/t-config.toml" };

test("version 2 templates and credentials: placeholder, trim, credential per secret; credstore and templates at the top, with defaults", () => {
  const m = parseManifest({
    ...v2,
    credstore: "/run/credstore",
    secrets: [{ ...secret, placeholder: ph("db"), trim: true, credential: true }, { name: "b", file: "/nix/store/y.age" }],
    templates: [tmpl, { name: "wg0.conf", file: "/nix/store/w", path: "/etc/wireguard/wg0.conf", mode: "0440", owner: "systemd-network", group: "systemd-network", symlink: false, restartUnits: ["wg.service"], reloadUnits: ["r.service"] }],
  });
  assert.equal(m.credstore, "/run/credstore");
  assert.deepEqual([m.secrets[0]!.placeholder, m.secrets[0]!.trim, m.secrets[0]!.credential], [ph("db"), true, true]);
  assert.deepEqual({ ...m.templates[0] }, { name: "tabby/config.toml", file: "/nix/store/t-config.toml", path: "/run/agenix/rendered/tabby/config.toml", mode: 0o400, owner: "0", group: "0", symlink: true, restartUnits: [], reloadUnits: [] });
  assert.deepEqual({ ...m.templates[1] }, { name: "wg0.conf", file: "/nix/store/w", path: "/etc/wireguard/wg0.conf", mode: 0o440, owner: "systemd-network", group: "systemd-network", symlink: false, restartUnits: ["wg.service"], reloadUnits: ["r.service"] });
  assert.equal(parseManifest({ ...v2, credstore: null, secrets: [] }).credstore, undefined);
  for (const field of ["credstore", "templates"]) {
    assert.throws(() => parseManifest({ ...base, [field]: field === "templates" ? [] : null, secrets: [] }), new RegExp(`manifest: ${field}: unknown field`), `version 1 has no ${field}`);
  }
  for (const field of ["placeholder", "trim", "credential"]) {
    assert.throws(() => parseManifest({ ...base, secrets: [{ ...secret, [field]: true }] }), new RegExp(`manifest: secrets\\[0\\]\\.${field}: unknown field`), `version 1 has no ${field}`);
  }
});

test("version 2 encryptedCredstore: the sealed credentials' directory and key type; absent or null is none", () => {
  const m = parseManifest({ ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "/run/credstore.encrypted", withKey: "host+tpm2" }, secrets: [{ ...secret, path: "/run/agenix/db/password", credential: true }] });
  assert.deepEqual(m.encryptedCredstore, { dir: "/run/credstore.encrypted", withKey: "host+tpm2" });
  assert.equal(parseManifest({ ...v2, encryptedCredstore: null, secrets: [] }).encryptedCredstore, undefined);
  assert.equal(parseManifest({ ...v2, secrets: [] }).encryptedCredstore, undefined);
  assert.throws(() => parseManifest({ ...base, encryptedCredstore: null, secrets: [] }), /^ManifestError: manifest: encryptedCredstore: unknown field/);
});

const badV2: Array<[string, unknown, RegExp]> = [
  ["an empty placeholder", { ...v2, secrets: [{ ...secret, placeholder: "" }] }, /^manifest: secrets\[0\]\.placeholder: expected a non-empty string, got ""$/],
  ["a placeholder with a newline", { ...v2, secrets: [{ ...secret, placeholder: "a\nb" }] }, /^manifest: secrets\[0\]\.placeholder: must not contain NUL or newline$/],
  ["two secrets with one placeholder", { ...v2, secrets: [{ ...secret, placeholder: ph("x") }, { name: "b", file: "/nix/store/b", placeholder: ph("x") }] }, /^manifest: secrets\[1\]\.placeholder: "<agenixd:x:placeholder>" is also the placeholder of secrets\[0\] \("db\/password"\)$/],
  ["trim not a boolean", { ...v2, secrets: [{ ...secret, trim: "yes" }] }, /^manifest: secrets\[0\]\.trim: expected true or false, got "yes"$/],
  ["a credential without a credstore", { ...v2, secrets: [{ ...secret, credential: true }] }, /^manifest: secrets\[0\]\.credential: is true, but the manifest has no credstore$/],
  ["a credential name systemd refuses", { ...v2, credstore: "/run/credstore", secrets: [{ ...secret, name: "a:b", credential: true }] }, /^manifest: secrets\[0\]\.credential: "a:b" cannot be published as a systemd credential: a credential name has no ":"$/],
  ["two credentials under one name", { ...v2, credstore: "/run/credstore", secrets: [{ ...secret, credential: true }, { name: "db_password", file: "/nix/store/b", credential: true }] }, /^manifest: secrets\[1\]\.credential: \/run\/credstore\/db_password is also where secrets\[0\] \("db\/password"\) is published as a credential$/],
  ["a relative credstore", { ...v2, credstore: "run/credstore", secrets: [] }, /^manifest: credstore: expected an absolute path, got "run\/credstore"$/],
  ["a credstore inside secretsDir", { ...v2, credstore: "/run/agenix/credstore", secrets: [] }, /^manifest: credstore: must not overlap secretsDir \(\/run\/agenix\)$/],
  ["a credstore containing secretsMountPoint", { ...v2, credstore: "/run", secrets: [] }, /^manifest: credstore: must not overlap secretsDir/],
  ["a secret's path that is a credential's link", { ...v2, credstore: "/run/credstore", secrets: [{ ...secret, name: "k", credential: true }, { name: "b", file: "/nix/store/b", path: "/run/credstore/k" }] }, /^manifest: secrets\[0\]\.credential: \/run\/credstore\/k is also the path of secrets\[1\] \("b"\)$/],
  ["a secret's path that is the credstore", { ...v2, credstore: "/run/credstore", secrets: [{ ...secret, name: "k", credential: true }, { name: "b", file: "/nix/store/b", path: "/run/credstore" }] }, /^manifest: secrets\[0\]\.credential: \/run\/credstore\/k is below \/run\/credstore, the path of secrets\[1\] \("b"\), which is a file$/],
  // issue 24: encrypted credentials
  ["an encryptedCredstore with an unknown key type", { ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "/run/credstore.encrypted", withKey: "tpm3" }, secrets: [] }, /^manifest: encryptedCredstore\.withKey: expected one of "auto", "host", "tpm2", "host\+tpm2", got "tpm3"$/],
  ["an encryptedCredstore without a key type", { ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "/run/credstore.encrypted" }, secrets: [] }, /^manifest: encryptedCredstore\.withKey: expected one of .*, got undefined$/],
  ["a relative encryptedCredstore", { ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "credstore.encrypted", withKey: "host" }, secrets: [] }, /^manifest: encryptedCredstore\.dir: expected an absolute path, got "credstore\.encrypted"$/],
  ["an encryptedCredstore that is the credstore", { ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "/run/credstore", withKey: "host" }, secrets: [] }, /^manifest: encryptedCredstore\.dir: must not overlap credstore \(\/run\/credstore\)$/],
  ["an encryptedCredstore inside secretsDir", { ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "/run/agenix/enc", withKey: "host" }, secrets: [] }, /^manifest: encryptedCredstore\.dir: must not overlap secretsDir \(\/run\/agenix\)$/],
  ["a typo in encryptedCredstore", { ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "/run/credstore.encrypted", withKey: "host", witKey: "tpm2" }, secrets: [] }, /^manifest: encryptedCredstore\.witKey: unknown field \(did you mean "withKey"\?\); allowed: dir, withKey$/],
  ["encryptedCredstore not an object", { ...v2, credstore: "/run/credstore", encryptedCredstore: "/run/credstore.encrypted", secrets: [] }, /^manifest: encryptedCredstore: expected an object/],
  ["an encrypted credential with a path of its own", { ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "/run/credstore.encrypted", withKey: "host" }, secrets: [{ ...secret, path: "/etc/db.pw", credential: true }] }, /^manifest: secrets\[0\]\.path: is \/etc\/db\.pw, but "db\/password" is an encrypted credential, which has no file outside \/run\/credstore\.encrypted; leave path at its default or set credential = false$/],
  ["an encrypted credential needed for users", { ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "/run/credstore.encrypted", withKey: "host" }, secrets: [{ ...secret, neededForUsers: true, credential: true }] }, /^manifest: secrets\[0\]\.neededForUsers: is true, but "db\/password" is an encrypted credential, which has no file a user's password could be read from$/],
  ["a secret in the sealed credentials' directory", { ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "/run/credstore.encrypted", withKey: "host" }, secrets: [{ ...secret, credential: true }, { name: "credstore.encrypted/x", file: "/nix/store/b" }] }, /^manifest: secrets\[1\]\.name: "credstore\.encrypted\/x" is in "credstore\.encrypted\/", where credentials are sealed in each generation; choose another name$/],
  ["two encrypted credentials under one name", { ...v2, credstore: "/run/credstore", encryptedCredstore: { dir: "/run/credstore.encrypted", withKey: "host" }, secrets: [{ ...secret, credential: true }, { name: "db_password", file: "/nix/store/b", credential: true }] }, /^manifest: secrets\[1\]\.credential: \/run\/credstore\.encrypted\/db_password is also where secrets\[0\] \("db\/password"\) is published as a credential$/],
  ["templates not a list", { ...v2, templates: {}, secrets: [] }, /^manifest: templates: expected a list, got \{\}$/],
  ["a template without a file", { ...v2, templates: [{ name: "x" }], secrets: [] }, /^manifest: templates\[0\]\.file: expected an absolute path, got undefined$/],
  ["a template name with ..", { ...v2, templates: [{ ...tmpl, name: "../x" }], secrets: [] }, /^manifest: templates\[0\]\.name: .*"\.\." segments$/],
  ["a typo in a template", { ...v2, templates: [{ ...tmpl, onwer: "x" }], secrets: [] }, /^manifest: templates\[0\]\.onwer: unknown field \(did you mean "owner"\?\); allowed: name, file, path, mode, owner, group, symlink, restartUnits, reloadUnits$/],
  ["a template's bad mode", { ...v2, templates: [{ ...tmpl, mode: "rw" }], secrets: [] }, /^manifest: templates\[0\]\.mode: expected a chmod mode/],
  ["a template's bad unit", { ...v2, templates: [{ ...tmpl, restartUnits: ["-x"] }], secrets: [] }, /^manifest: templates\[0\]\.restartUnits\[0\]: expected a unit name/],
  ["a template path in the mount point", { ...v2, templates: [{ ...tmpl, path: "/run/agenix.d/1/x" }], secrets: [] }, /^manifest: templates\[0\]\.path: must not be inside secretsMountPoint/],
  ["two templates of one name", { ...v2, templates: [tmpl, tmpl], secrets: [] }, /^manifest: templates\[1\]\.name: \/run\/agenix\/rendered\/tabby\/config\.toml is also where templates\[0\] \("tabby\/config\.toml"\) is rendered in secretsDir$/],
  ["a template below another", { ...v2, templates: [{ ...tmpl, name: "a" }, { ...tmpl, name: "a/b" }], secrets: [] }, /^manifest: templates\[1\]\.name: \/run\/agenix\/rendered\/a\/b is below \/run\/agenix\/rendered\/a, where templates\[0\] \("a"\) is rendered in secretsDir, which is a file$/],
  ["a template path that is a secret's", { ...v2, templates: [{ ...tmpl, path: "/etc/app.toml" }], secrets: [{ ...secret, path: "/etc/app.toml" }] }, /^manifest: templates\[0\]\.path: \/etc\/app\.toml is also the path of secrets\[0\] \("db\/password"\)$/],
  ["a template path that is a secret's file in secretsDir", { ...v2, templates: [{ ...tmpl, path: "/run/agenix/db/password" }], secrets: [secret] }, /^manifest: templates\[0\]\.path: \/run\/agenix\/db\/password is also where secrets\[0\] \("db\/password"\) is installed in secretsDir$/],
  ["a secret named rendered", { ...v2, templates: [tmpl], secrets: [{ ...secret, name: "rendered" }] }, /^manifest: secrets\[0\]\.name: "rendered" is in "rendered\/", where templates are rendered in each generation; choose another name$/],
  ["a secret below rendered/", { ...v2, templates: [tmpl], secrets: [{ ...secret, name: "rendered/other" }] }, /^manifest: secrets\[0\]\.name: "rendered\/other" is in "rendered\/", where templates are rendered in each generation; choose another name$/],
  ["a secret path below rendered/", { ...v2, templates: [tmpl], secrets: [{ ...secret, path: "/run/agenix/rendered/x" }] }, /^manifest: secrets\[0\]\.path: "rendered\/x" is in "rendered\/", where templates are rendered/],
  ["a template path in rendered/ not its own", { ...v2, templates: [{ ...tmpl, path: "/run/agenix/rendered/elsewhere" }], secrets: [] }, /^manifest: templates\[0\]\.path: "rendered\/elsewhere" is in "rendered\/"/],
  ["a secret below credstore/ when credentials exist", { ...v2, credstore: "/run/credstore", secrets: [{ ...secret, credential: true }, { name: "credstore/x", file: "/nix/store/b" }] }, /^manifest: secrets\[1\]\.name: "credstore\/x" is in "credstore\/", where credentials are published in each generation; choose another name$/],
];
for (const [label, json, expected] of badV2) {
  test(`manifest refused: ${label}`, () => {
    assert.throws(() => parseManifest(json), (e: unknown) => e instanceof ManifestError && (expected.test(e.message) || assert.fail(e.message)));
  });
}

test("names rendered and credstore are free when there are no templates or no credentials; a template path inside secretsDir is fine", () => {
  const m = parseManifest({ ...v2, secrets: [{ ...secret, name: "rendered" }, { name: "credstore/x", file: "/nix/store/b" }] });
  assert.equal(m.secrets.length, 2);
  const t = parseManifest({ ...v2, templates: [{ ...tmpl, path: "/run/agenix/app/config.toml" }, { ...tmpl, name: "b", path: "/etc/b" }], secrets: [secret] });
  assert.equal(t.templates[0]!.path, "/run/agenix/app/config.toml");
  // A secret's path in the credstore directory, not at a credential's name, stays allowed (the old way of doing it).
  const c = parseManifest({ ...v2, credstore: "/run/credstore", secrets: [{ ...secret, credential: true }, { name: "old", file: "/nix/store/o", path: "/run/credstore/old" }] });
  assert.equal(c.secrets[1]!.path, "/run/credstore/old");
});

test("version 2 adds restartUnits and reloadUnits per secret; version 1 has none of them", () => {
  const m = parseManifest({ ...base, version: 2, secrets: [{ ...secret, restartUnits: ["postgresql.service", "getty@tty1.service"], reloadUnits: ["nginx"] }, { name: "b", file: "/nix/store/y.age" }] });
  assert.equal(m.version, 2);
  assert.deepEqual(m.secrets[0]!.restartUnits, ["postgresql.service", "getty@tty1.service"]);
  assert.deepEqual(m.secrets[0]!.reloadUnits, ["nginx"]);
  assert.deepEqual([m.secrets[1]!.restartUnits, m.secrets[1]!.reloadUnits], [[], []]);
  const refuse = (secretFields: Record<string, unknown>, message: RegExp) =>
    assert.throws(() => parseManifest({ ...base, version: 2, secrets: [{ ...secret, ...secretFields }] }), message);
  refuse({ restartUnits: "a.service" }, /manifest: secrets\[0\]\.restartUnits: expected a list of unit names, got "a.service"$/);
  refuse({ reloadUnits: ["ok.service", "--now"] }, /manifest: secrets\[0\]\.reloadUnits\[1\]: expected a unit name like "nginx.service", got "--now"$/);
  refuse({ restartUnits: ["a b"] }, /restartUnits\[0\]: expected a unit name/);
  refuse({ restartUnits: [7] }, /restartUnits\[0\]: expected a unit name/);
  refuse({ restartUnit: [] }, /secrets\[0\]\.restartUnit: unknown field \(did you mean "restartUnits"\?\)/);
  assert.throws(() => parseManifest({ ...base, version: 1, secrets: [{ ...secret, restartUnits: [] }] }), /secrets\[0\]\.restartUnits: unknown field/);
});

test("paths come out as posix.normalize makes them, without a trailing slash", () => {
  const paths = [
    "/", "/etc/ssh/key", "/etc//ssh/key", "//etc/key", "/etc/./key", "/./etc/key", "/etc/.", "/etc/key/", "/etc/key//",
    "/etc/.hidden", "/etc/..key", "/etc/key.", "/etc/.../key", "/etc/a.b/./c", "/nix/store/0000-x.age", "///", "/.", "/a/b/.//c/",
  ];
  const m = parseManifest({ ...base, identityPaths: paths, secrets: [] });
  const expected = paths.map((p) => {
    const normal = posix.normalize(p);
    return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
  });
  assert.deepEqual(m.identityPaths, expected);
});

const bad: Array<[string, unknown, RegExp]> = [
  ["not an object", [], /manifest: expected an object/],
  ["wrong version", { ...base, version: 3, secrets: [] }, /version: expected 1 or 2, got 3/],
  ["relative secretsDir", { ...base, secretsDir: "run/agenix", secrets: [] }, /secretsDir: expected an absolute path/],
  ["overlapping dirs", { ...base, secretsMountPoint: "/run/agenix/d", secrets: [] }, /secretsMountPoint: must not overlap/],
  ["identityPaths not a list", { ...base, identityPaths: "/k", secrets: [] }, /identityPaths: expected a list/],
  ["keepGenerations 0", { ...base, keepGenerations: 0, secrets: [] }, /keepGenerations: expected an integer ≥ 1/],
  ["dotdot name", { ...base, secrets: [{ ...secret, name: "a/../b" }] }, /secrets\[0\]\.name: .*"\.\." segments/],
  ["empty segment", { ...base, secrets: [{ ...secret, name: "a//b" }] }, /secrets\[0\]\.name: .*empty path segment/],
  ["absolute name", { ...base, secrets: [{ ...secret, name: "/etc/x" }] }, /secrets\[0\]\.name: must be relative/],
  ["newline in name", { ...base, secrets: [{ ...secret, name: "a\nb" }] }, /secrets\[0\]\.name: must not contain NUL or newline/],
  ["NUL in path", { ...base, secrets: [{ ...secret, path: "/run/x\0y" }] }, /secrets\[0\]\.path: must not contain NUL/],
  ["path in mount point", { ...base, secrets: [{ ...secret, path: "/run/agenix.d/1/x" }] }, /secrets\[0\]\.path: must not be inside secretsMountPoint/],
  ["invalid mode", { ...base, secrets: [{ ...secret, mode: "rw" }] }, /secrets\[0\]\.mode: expected a chmod mode like "0400"/],
  ["owner with colon", { ...base, secrets: [{ ...secret, owner: "a:b" }] }, /secrets\[0\]\.owner/],
  ["symlink not bool", { ...base, secrets: [{ ...secret, symlink: "yes" }] }, /secrets\[0\]\.symlink: expected true or false/],
  ["duplicate names", { ...base, secrets: [secret, { ...secret, path: "/other" }] }, /secrets\[1\]\.name: "db\/password" is also the name of secrets\[0\]/],
  ["duplicate paths", { ...base, secrets: [{ ...secret, path: "/etc/x" }, { ...secret, name: "x", path: "/etc/x" }] }, /secrets\[1\]\.path: \/etc\/x is also the path of secrets\[0\] \("db\/password"\)$/],
  ["file and directory", { ...base, secrets: [{ ...secret, name: "db", path: "/run/agenix/db" }, secret] }, /"db" is a file but "db\/password" needs it to be a directory/],
  // Unknown fields (#13.9): a typo must not silently fall back to a default.
  ["a typo in a secret", { ...base, secrets: [{ ...secret, onwer: "postgres" }] }, /manifest: secrets\[0\]\.onwer: unknown field \(did you mean "owner"\?\); allowed: name, file, path, mode, owner, group, symlink, neededForUsers$/],
  ["an unknown top-level field", { ...base, secretDir: "/run/x", secrets: [] }, /^manifest: secretDir: unknown field \(did you mean "secretsDir"\?\); allowed: version, secretsDir, /],
  ["a field of no version", { ...base, secrets: [{ ...secret, restartUnits: ["a.service"] }] }, /manifest: secrets\[0\]\.restartUnits: unknown field; allowed: /],
  // Overlaps (#13.5): one secret must never silently replace another.
  [
    "a path that is another secret's file in secretsDir",
    { ...base, secrets: [{ ...secret, name: "a", path: "/run/agenix/a" }, { ...secret, name: "b", path: "/run/agenix/a" }] },
    /^manifest: secrets\[1\]\.path: \/run\/agenix\/a is also where secrets\[0\] \("a"\) is installed in secretsDir$/,
  ],
  [
    "a name whose file in secretsDir is another secret's path",
    { ...base, secrets: [{ ...secret, name: "b", path: "/run/agenix/renamed" }, { ...secret, name: "renamed", path: "/etc/renamed" }] },
    /^manifest: secrets\[1\]\.name: \/run\/agenix\/renamed is also the path of secrets\[0\] \("b"\)$/,
  ],
  [
    "a path below another secret's path",
    { ...base, secrets: [{ ...secret, name: "a", path: "/etc/app" }, { ...secret, name: "b", path: "/etc/app/key" }] },
    /^manifest: secrets\[1\]\.path: \/etc\/app\/key is below \/etc\/app, the path of secrets\[0\] \("a"\), which is a file$/,
  ],
  [
    "a path below another secret's file in secretsDir",
    { ...base, secrets: [{ ...secret, name: "a", path: "/run/agenix/a" }, { ...secret, name: "b", path: "/run/agenix/a/b" }] },
    /^manifest: secrets\[1\]\.path: \/run\/agenix\/a\/b is below \/run\/agenix\/a, where secrets\[0\] \("a"\) is installed in secretsDir, which is a file$/,
  ],
  [
    "a name below another secret's path inside secretsDir",
    { ...base, secrets: [{ ...secret, name: "a", path: "/run/agenix/tls" }, { ...secret, name: "tls/key", path: "/run/agenix/tls/key" }] },
    /^manifest: secrets\[1\]\.name: \/run\/agenix\/tls\/key is below \/run\/agenix\/tls, the path of secrets\[0\] \("a"\), which is a file$/,
  ],
  [
    "a path below the secret's own file",
    { ...base, secrets: [{ ...secret, name: "a", path: "/run/agenix/a/inner" }] },
    /manifest: secrets\[0\]\.path: \/run\/agenix\/a\/inner is below \/run\/agenix\/a, where secrets\[0\] \("a"\) is installed in secretsDir, which is a file$/,
  ],
  ["a path containing secretsDir", { ...base, secrets: [{ ...secret, path: "/run" }] }, /manifest: secrets\[0\]\.path: must not contain secretsDir \(\/run\/agenix\)$/],
  ["a path containing secretsMountPoint", { ...base, secretsDir: "/var/agenix", secrets: [{ ...secret, path: "/run" }] }, /manifest: secrets\[0\]\.path: must not contain secretsMountPoint \(\/run\/agenix\.d\)$/],
];
for (const [label, json, expected] of bad) {
  test(`manifest refused: ${label}`, () => {
    assert.throws(() => parseManifest(json), (e: unknown) => e instanceof ManifestError && expected.test(e.message));
  });
}

test("overlap checks accept what does not overlap: siblings, nested names, paths sharing a prefix but not a directory", () => {
  const m = parseManifest({
    ...base,
    secrets: [
      { ...secret, name: "a", path: "/etc/app" },
      { ...secret, name: "a2", path: "/etc/app2" },
      { ...secret, name: "tls/cert", path: "/run/agenix/tls/cert" },
      { ...secret, name: "tls/key", path: "/etc/ssl/key" },
      { ...secret, name: "inner", path: "/run/agenix/renamed/inner" },
    ],
  });
  assert.equal(m.secrets.length, 5);
});

test("docs/manifest.md documents exactly the allowed fields, and its example parses", () => {
  const doc = readFileSync(new URL("../../docs/manifest.md", import.meta.url), "utf8");
  const example = /```json\n([\s\S]*?)\n```/.exec(doc)![1]!;
  const m = parseManifest(JSON.parse(example));
  assert.equal(m.secrets[0]!.owner, "postgres");
  // The two field tables: the manifest's (after "| field | type | meaning |") and a secret's.
  // The three field tables: the manifest's (after "| field | type | meaning |"), a secret's and a template's.
  const tables = doc.split(/^\| field \|.*\n\| ---.*\n/m).slice(1).map((t) => [...t.matchAll(/^\| `([A-Za-z]+)` \|/gm)].map((r) => r[1]));
  assert.deepEqual(tables.slice(0, 3), [MANIFEST_FIELDS[2]!.manifest, MANIFEST_FIELDS[2]!.secret, MANIFEST_FIELDS[2]!.template]);
  const v2Only = ["restartUnits", "reloadUnits", "placeholder", "trim", "credential", "credstore", "encryptedCredstore", "templates", "pluginDirs", "pluginSockets"];
  assert.deepEqual(MANIFEST_FIELDS[1]!.secret, MANIFEST_FIELDS[2]!.secret.filter((f) => !v2Only.includes(f)), "version 1 is version 2 without the unit lists, templates and credentials");
  assert.deepEqual(MANIFEST_FIELDS[1]!.manifest, MANIFEST_FIELDS[2]!.manifest.filter((f) => !v2Only.includes(f)));
  // Every example in the page parses.
  for (const [, json] of doc.matchAll(/```json\n([\s\S]*?)\n```/g)) parseManifest(JSON.parse(json!));
});

test("accounts resolve names from passwd/group files and accept numeric ids", (t) => {
  const dir = mkdtempSync("/tmp/agenixd-accounts-");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(`${dir}/passwd`, "root:x:0:0::/root:/bin/sh\npostgres:x:71:71::/var/lib/postgresql:/bin/sh\n#comment\n\n");
  writeFileSync(`${dir}/group`, "root:x:0:\nkeys:x:96:\npostgres:x:71:\n");
  const a = readAccounts(`${dir}/passwd`, `${dir}/group`);
  assert.equal(a.uid("postgres"), 71);
  assert.equal(a.uid("0"), 0);
  assert.equal(a.uid("1234"), 1234);
  assert.equal(a.uid("nobody-here"), undefined);
  assert.equal(a.gid("keys"), 96);
  assert.equal(a.gid("missing"), undefined);
});
