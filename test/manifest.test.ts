import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { parseManifest, ManifestError } from "../src/manifest.js";
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
    { name: "b", file: "/nix/store/y.age", path: "/run/agenix/b", mode: 0o400, owner: "0", group: "0", symlink: true, neededForUsers: false },
  );
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
  ["wrong version", { ...base, version: 2, secrets: [] }, /version: expected 1/],
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
  ["duplicate paths", { ...base, secrets: [secret, { ...secret, name: "x" }] }, /secrets\[1\]\.path: .* is also the path of secrets\[0\]/],
  ["file and directory", { ...base, secrets: [{ ...secret, name: "db", path: "/run/agenix/db" }, secret] }, /"db" is a file but "db\/password" needs it to be a directory/],
];
for (const [label, json, expected] of bad) {
  test(`manifest refused: ${label}`, () => {
    assert.throws(() => parseManifest(json), (e: unknown) => e instanceof ManifestError && expected.test(e.message));
  });
}

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
