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
    { name: "b", file: "/nix/store/y.age", path: "/run/agenix/b", mode: 0o400, owner: "0", group: "0", symlink: true, neededForUsers: false, restartUnits: [], reloadUnits: [] },
  );
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
  const tables = doc.split(/^\| field \|.*\n\| ---.*\n/m).slice(1).map((t) => [...t.matchAll(/^\| `([A-Za-z]+)` \|/gm)].map((r) => r[1]));
  assert.deepEqual(tables.slice(0, 2), [MANIFEST_FIELDS[2]!.manifest, MANIFEST_FIELDS[2]!.secret]);
  assert.deepEqual(MANIFEST_FIELDS[1]!.secret, MANIFEST_FIELDS[2]!.secret.filter((f) => f !== "restartUnits" && f !== "reloadUnits"), "version 1 is version 2 without the unit lists");
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
