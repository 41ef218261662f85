// The activation pipeline end to end, as root, on a real ramfs in a private mount namespace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { AGENIXD, Sandbox, fsType, parseLogs, withUser } from "./helpers/sandbox.js";

function mode(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, "0");
}

function generations(sb: Sandbox): string[] {
  return readdirSync(sb.mountPoint).filter((e) => /^\d+$/.test(e)).sort((a, b) => Number(a) - Number(b));
}

test("first activation writes generation 1 on a ramfs and points secretsDir at it", (t) => {
  const sb = new Sandbox("first");
  t.after(() => sb.cleanup());
  const m = sb.manifest([
    { name: "db-password", plaintext: "hunter2" },
    { name: "tls/key.pem", plaintext: "-----BEGIN PRIVATE KEY-----\n", mode: "0440" },
  ]);
  const r = sb.run(m);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(fsType(sb.mountPoint), "858458f6", "secretsMountPoint is a ramfs");
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/1`);
  assert.equal(sb.read("db-password"), "hunter2");
  assert.equal(sb.read("tls/key.pem"), "-----BEGIN PRIVATE KEY-----\n");
  assert.equal(mode(`${sb.mountPoint}/1/db-password`), "0400");
  assert.equal(mode(`${sb.mountPoint}/1/tls/key.pem`), "0440");
  assert.equal(mode(`${sb.mountPoint}/1/tls`), "0751", "nested directory mode");
  assert.equal(mode(`${sb.mountPoint}/1`), "0751");
  assert.equal(mode(sb.mountPoint), "0751");
  assert.equal(statSync(`${sb.mountPoint}/1/db-password`).uid, 0);
  const done = r.logs.find((l) => l.msg === "generation 1 is active");
  assert.ok(done, "logs the new generation");
  assert.equal(done.installed, 2);
});

test("the ramfs is mounted once: a second activation reuses it", (t) => {
  const sb = new Sandbox("remount");
  t.after(() => sb.cleanup());
  const m = sb.manifest([{ name: "a" }]);
  assert.equal(sb.run(m).status, 0);
  assert.equal(sb.run(m).status, 0);
  const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.split(" ")[4] === sb.mountPoint);
  assert.equal(mounts.length, 1, mounts.join("\n"));
});

test("a ramfs that cannot be mounted fails the activation with the cause; nothing is written", (t) => {
  const sb = new Sandbox("no-mount");
  t.after(() => sb.cleanup());
  const m = sb.manifest([{ name: "a" }]);
  // Root without CAP_SYS_ADMIN (dropped from the bounding set before exec): mount(2) says EPERM.
  const r = spawnSync("setpriv", ["--bounding-set", "-sys_admin", "--", process.execPath, ...AGENIXD, "activate", "--manifest", m], { encoding: "utf8", env: { PATH: "/usr/bin:/bin" } });
  assert.equal(r.status, 1, r.stderr);
  const fatal = parseLogs(r.stderr).find((l) => l.level === "fatal");
  assert.equal(fatal?.cause, `activation failed: cannot mount a ramfs on ${sb.mountPoint}: mount(2) failed: operation not permitted`);
  assert.notEqual(fsType(sb.mountPoint), "858458f6", "no ramfs was mounted");
  assert.equal(existsSync(sb.secretsDir), false);
  assert.deepEqual(readdirSync(sb.mountPoint), []);
});

test("the ramfs is mounted without mount(8) (a NixOS unit's PATH has no util-linux): nodev, nosuid, mode 0751", (t) => {
  const sb = new Sandbox("mount-options");
  t.after(() => sb.cleanup());
  const r = spawnSync(process.execPath, [...AGENIXD, "activate", "--manifest", sb.manifest([{ name: "a" }])], { encoding: "utf8", env: { PATH: "/nonexistent" } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(sb.read("a"), "value of a");
  // mountinfo: id parent dev root mountpoint options … - fstype source superoptions
  const line = readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => l.split(" ")[4] === sb.mountPoint);
  assert.ok(line, `${sb.mountPoint} is in /proc/self/mountinfo`);
  const fields = line.split(" ");
  const options = fields[5]!.split(",");
  const [fstype, source, superOptions] = fields.slice(fields.indexOf("-") + 1);
  assert.ok(options.includes("nodev") && options.includes("nosuid"), line);
  assert.equal(fstype, "ramfs", line);
  assert.equal(source, "none", line);
  assert.ok(superOptions!.split(",").includes("mode=751"), line);
  assert.equal(mode(sb.mountPoint), "0751");
});

test("second activation makes generation 2 and prunes generation 1; keepGenerations keeps more", (t) => {
  const sb = new Sandbox("gens");
  t.after(() => sb.cleanup());
  assert.equal(sb.run(sb.manifest([{ name: "s", plaintext: "one" }])).status, 0);
  assert.equal(sb.run(sb.manifest([{ name: "s", plaintext: "two" }])).status, 0);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/2`);
  assert.deepEqual(generations(sb), ["2"]);
  assert.equal(sb.read("s"), "two");

  for (const v of ["three", "four", "five"]) {
    assert.equal(sb.run(sb.manifest([{ name: "s", plaintext: v }], { keepGenerations: 3 })).status, 0);
  }
  assert.deepEqual(generations(sb), ["3", "4", "5"]);
  assert.equal(readFileSync(`${sb.mountPoint}/4/s`, "utf8"), "four");
  assert.equal(sb.read("s"), "five");
});

test("a leftover directory of the next number is removed, not reused; non-numeric entries are left alone", (t) => {
  const sb = new Sandbox("leftover");
  t.after(() => sb.cleanup());
  assert.equal(sb.run(sb.manifest([{ name: "a" }])).status, 0);
  mkdirSync(`${sb.mountPoint}/2`);
  writeFileSync(`${sb.mountPoint}/2/stale`, "from an aborted run");
  mkdirSync(`${sb.mountPoint}/lost+found`);
  assert.equal(sb.run(sb.manifest([{ name: "a" }])).status, 0);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/2`);
  assert.equal(existsSync(`${sb.mountPoint}/2/stale`), false);
  assert.ok(existsSync(`${sb.mountPoint}/lost+found`));
});

test("owner and group by name and by numeric id, applied before the swap", (t) => {
  const user = withUser("agxtest-pg");
  const sb = new Sandbox("owner");
  t.after(() => {
    sb.cleanup();
    user.remove();
  });
  const r = sb.run(
    sb.manifest([
      { name: "by-name", owner: "agxtest-pg", group: "agxtest-pg", mode: "0440" },
      { name: "by-id", owner: "4242", group: "4343", mode: "0600" },
      { name: "root-default" },
    ]),
  );
  assert.equal(r.status, 0, r.stderr);
  const byName = statSync(`${sb.secretsDir}/by-name`);
  assert.equal(byName.uid, user.uid);
  assert.equal(byName.gid, user.gid);
  const byId = statSync(`${sb.secretsDir}/by-id`);
  assert.equal(byId.uid, 4242);
  assert.equal(byId.gid, 4343);
  assert.equal(mode(`${sb.secretsDir}/by-id`), "0600");
  assert.equal(statSync(`${sb.secretsDir}/root-default`).uid, 0);
});

test("custom paths: a symlink through secretsDir, a copy with owner and mode, and a path inside secretsDir", (t) => {
  const sb = new Sandbox("paths");
  t.after(() => sb.cleanup());
  const linkPath = join(sb.root, "var/lib/app/token");
  const copyPath = join(sb.root, "etc/app/config.toml");
  const r = sb.run(
    sb.manifest([
      { name: "token", plaintext: "tok", path: linkPath },
      { name: "config", plaintext: "[server]\ntoken = 'x'\n", path: copyPath, symlink: false, mode: "0440", owner: "4242", group: "4343" },
      { name: "inner", plaintext: "in", path: `${sb.secretsDir}/renamed/inner` },
    ]),
  );
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readlinkSync(linkPath), `${sb.secretsDir}/token`);
  assert.equal(mode(join(sb.root, "var/lib/app")), "0755", "parents of a target are made like mkdir -p, despite the 077 umask");
  assert.equal(readFileSync(linkPath, "utf8"), "tok");
  assert.ok(lstatSync(copyPath).isFile());
  assert.equal(readFileSync(copyPath, "utf8"), "[server]\ntoken = 'x'\n");
  assert.equal(mode(copyPath), "0440");
  assert.equal(statSync(copyPath).uid, 4242);
  assert.equal(readlinkSync(`${sb.mountPoint}/1/renamed/inner`), `${sb.secretsDir}/inner`);
  assert.equal(readFileSync(`${sb.secretsDir}/renamed/inner`, "utf8"), "in");
  // No temporary names are left behind.
  assert.deepEqual(readdirSync(join(sb.root, "etc/app")), ["config.toml"]);
  assert.deepEqual(readdirSync(join(sb.root, "var/lib/app")), ["token"]);

  // A second activation replaces both atomically with new values.
  assert.equal(sb.run(sb.manifest([
    { name: "token", plaintext: "tok2", path: linkPath },
    { name: "config", plaintext: "v2", path: copyPath, symlink: false, mode: "0400" },
  ])).status, 0);
  assert.equal(readFileSync(linkPath, "utf8"), "tok2");
  assert.equal(readFileSync(copyPath, "utf8"), "v2");
  assert.equal(mode(copyPath), "0400");
});

test("secretsDir as a real directory: replaced when empty, refused with a clear error when not", (t) => {
  const sb = new Sandbox("realdir");
  t.after(() => sb.cleanup());
  mkdirSync(sb.secretsDir, { recursive: true });
  assert.equal(sb.run(sb.manifest([{ name: "a" }])).status, 0);
  assert.ok(lstatSync(sb.secretsDir).isSymbolicLink());

  const sb2 = new Sandbox("realdir2");
  t.after(() => sb2.cleanup());
  mkdirSync(sb2.secretsDir, { recursive: true });
  writeFileSync(`${sb2.secretsDir}/precious`, "keep me");
  const r = sb2.run(sb2.manifest([{ name: "a" }]));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /is a real directory with files in it/);
  assert.equal(readFileSync(`${sb2.secretsDir}/precious`, "utf8"), "keep me");
});

test("a target path that is a real directory is never replaced", (t) => {
  const sb = new Sandbox("dirtarget");
  t.after(() => sb.cleanup());
  const target = join(sb.root, "srv/secret");
  mkdirSync(target, { recursive: true });
  writeFileSync(join(target, "inside"), "data");
  const r = sb.run(sb.manifest([{ name: "s", path: target }, { name: "ok" }]));
  assert.equal(r.status, 1);
  const err = r.logs.find((l) => l.level === "error" && l.secret === "s");
  assert.ok(err);
  assert.match(String(err.cause), /refusing to replace the directory/);
  assert.equal(readFileSync(join(target, "inside"), "utf8"), "data");
  assert.equal(sb.read("ok"), "value of ok");
});

test("a symlink planted at a target path is replaced, never written through", (t) => {
  const sb = new Sandbox("planted");
  t.after(() => sb.cleanup());
  const victim = join(sb.root, "victim");
  writeFileSync(victim, "original");
  const copyPath = join(sb.root, "app/copy");
  const linkPath = join(sb.root, "app/link");
  mkdirSync(join(sb.root, "app"));
  symlinkSync(victim, copyPath);
  symlinkSync(victim, linkPath);
  const r = sb.run(sb.manifest([
    { name: "c", plaintext: "secret-c", path: copyPath, symlink: false },
    { name: "l", plaintext: "secret-l", path: linkPath },
  ]));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(victim, "utf8"), "original");
  assert.ok(lstatSync(copyPath).isFile());
  assert.equal(readFileSync(copyPath, "utf8"), "secret-c");
  assert.equal(readlinkSync(linkPath), `${sb.secretsDir}/l`);
});

for (const kind of ["missing file", "no matching identity", "corrupt ciphertext", "unknown owner", "unknown group"] as const) {
  test(`failure (${kind}): other secrets update, the failed one keeps its previous bytes, owner and mode`, (t) => {
    const sb = new Sandbox("fail");
    t.after(() => sb.cleanup());
    assert.equal(sb.run(sb.manifest([
      { name: "good", plaintext: "good-1" },
      { name: "bad", plaintext: "bad-1", mode: "0440", owner: "4242", group: "4343" },
    ])).status, 0);

    const otherKey = new Sandbox("other");
    t.after(() => otherKey.cleanup());
    const bad: Record<typeof kind, Partial<import("./helpers/sandbox.js").SecretInput>> = {
      "missing file": { file: join(sb.root, "store/does-not-exist.age") },
      "no matching identity": { recipients: [otherKey.hostKey.recipient] },
      "corrupt ciphertext": { file: corrupt(sb.encrypt("bad-2"), join(sb.root, "store/corrupt.age")) },
      "unknown owner": { owner: "no-such-user-agx" },
      "unknown group": { group: "no-such-group-agx" },
    };
    const r = sb.run(sb.manifest([
      { name: "good", plaintext: "good-2" },
      { name: "bad", plaintext: "bad-2", mode: "0400", ...bad[kind] },
    ]));
    assert.equal(r.status, 1, "exit status is non-zero so the unit shows as failed");
    assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/2`);
    assert.equal(sb.read("good"), "good-2");
    assert.equal(sb.read("bad"), "bad-1");
    const st = statSync(`${sb.secretsDir}/bad`);
    assert.equal((st.mode & 0o7777).toString(8), "440");
    assert.equal(st.uid, 4242);
    assert.equal(st.gid, 4343);
    const errors = r.logs.filter((l) => l.level === "error");
    assert.equal(errors.length, 1, JSON.stringify(errors));
    assert.equal(errors[0]!.secret, "bad");
    assert.equal(errors[0]!.keptPrevious, true);
    assert.ok(String(errors[0]!.file).endsWith(".age"));
    assert.ok(String(errors[0]!.cause).length > 0);
  });
}

function corrupt(file: string, out: string): string {
  const data = readFileSync(file);
  data.writeUInt8(data.readUInt8(data.length - 5) ^ 0x55, data.length - 5);
  writeFileSync(out, data);
  return out;
}

test("a failed secret with no previous generation is absent; the others are installed", (t) => {
  const sb = new Sandbox("fresh-fail");
  t.after(() => sb.cleanup());
  const r = sb.run(sb.manifest([{ name: "good" }, { name: "bad", file: "/nonexistent/x.age" }]));
  assert.equal(r.status, 1);
  assert.equal(sb.read("good"), "value of good");
  assert.equal(existsSync(`${sb.secretsDir}/bad`), false);
  const err = r.logs.find((l) => l.level === "error");
  assert.equal(err?.keptPrevious, false);
  assert.match(String(err?.cause), /does not exist/);
});

test("when nothing can be decrypted the current generation stays active", (t) => {
  const sb = new Sandbox("allfail");
  t.after(() => sb.cleanup());
  assert.equal(sb.run(sb.manifest([{ name: "a", plaintext: "A" }, { name: "b", plaintext: "B" }])).status, 0);
  const r = sb.run(sb.manifest([{ name: "a", file: "/nonexistent/a.age" }, { name: "b", file: "/nonexistent/b.age" }]));
  assert.equal(r.status, 1);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/1`);
  assert.deepEqual(generations(sb), ["1"]);
  assert.equal(sb.read("a"), "A");
});

test("no identity usable: every secret fails with a cause saying so, previous values kept", (t) => {
  const sb = new Sandbox("noid");
  t.after(() => sb.cleanup());
  assert.equal(sb.run(sb.manifest([{ name: "a", plaintext: "A" }])).status, 0);
  const r = sb.run(sb.manifest([{ name: "a", plaintext: "A2" }], { identityPaths: ["/nonexistent/key"] }));
  assert.equal(r.status, 1);
  assert.ok(r.logs.some((l) => l.level === "warn" && l.identity === "/nonexistent/key"));
  assert.match(String(r.logs.find((l) => l.level === "error")?.cause), /no usable identity/);
  assert.equal(sb.read("a"), "A");
});

test("malformed manifests are refused with an error naming the field; nothing installed is touched", (t) => {
  const sb = new Sandbox("badmanifest");
  t.after(() => sb.cleanup());
  assert.equal(sb.run(sb.manifest([{ name: "a", plaintext: "A" }])).status, 0);
  const cases: Array<[string, RegExp]> = [
    ["{not json", /not valid JSON/],
    [JSON.stringify({ version: 3 }), /version: expected 1 or 2, got 3/],
    [JSON.stringify({ version: 1, secretsDir: sb.secretsDir, secretsMountPoint: sb.mountPoint, identityPaths: [], secrets: [{ name: "../escape", file: "/x.age", path: "/x", mode: "0400", owner: "0", group: "0", symlink: true }] }), /secrets\[0\]\.name: .*"\.\." segments/],
    [JSON.stringify({ version: 1, secretsDir: sb.secretsDir, secretsMountPoint: sb.mountPoint, identityPaths: [], secrets: [{ name: "a", file: "/x.age", mode: "rw", owner: "0", group: "0", symlink: true }] }), /secrets\[0\]\.mode: expected a chmod mode/],
    [JSON.stringify({ version: 1, secretsDir: sb.secretsDir, secretsMountPoint: sb.mountPoint, identityPaths: [], secrets: [{ name: "a", file: "/x.age", onwer: "postgres" }] }), /secrets\[0\]\.onwer: unknown field \(did you mean "owner"\?\)/],
    [JSON.stringify({ version: 1, secretsDir: sb.secretsDir, secretsMountPoint: sb.mountPoint, identityPaths: [], secrets: [{ name: "a", file: "/x.age" }, { name: "b", file: "/y.age", path: `${sb.secretsDir}/a` }] }), /secrets\[1\]\.path: .* is also where secrets\[0\] \("a"\) is installed in secretsDir/],
    ["", /not valid JSON/],
  ];
  for (const [text, expected] of cases) {
    const file = join(sb.root, "bad.json");
    writeFileSync(file, text);
    const r = sb.run(file);
    assert.equal(r.status, 1);
    const fatal = r.logs.filter((l) => l.level === "fatal");
    assert.equal(fatal.length, 1);
    assert.match(String(fatal[0]!.msg), expected);
  }
  const missing = sb.run(join(sb.root, "no-such-manifest.json"));
  assert.equal(missing.status, 1);
  assert.equal(missing.logs.find((l) => l.level === "fatal")?.msg, `cannot read the manifest: ${join(sb.root, "no-such-manifest.json")} does not exist`);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/1`);
  assert.equal(sb.read("a"), "A");
});

test("phase users installs only neededForUsers secrets and keeps every other secret of the current generation", (t) => {
  const sb = new Sandbox("phase");
  t.after(() => sb.cleanup());
  assert.equal(sb.run(sb.manifest([
    { name: "hash", plaintext: "$6$old", neededForUsers: true },
    { name: "api", plaintext: "api-1", mode: "0440", owner: "4242" },
  ])).status, 0);
  const r = sb.run(sb.manifest([
    { name: "hash", plaintext: "$6$new", neededForUsers: true },
    { name: "api", plaintext: "api-2" },
  ]), ["--phase", "users"]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/2`);
  assert.equal(sb.read("hash"), "$6$new");
  assert.equal(sb.read("api"), "api-1", "not decrypted in this phase: carried over");
  assert.equal(statSync(`${sb.secretsDir}/api`).uid, 4242);

  // Perl activation runs this phase at every switch: unchanged early secrets make no new generation.
  const again = sb.run(sb.manifest([{ name: "hash", plaintext: "$6$new", neededForUsers: true }, { name: "api", plaintext: "api-2" }]), ["--phase", "users"]);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/2`);
  assert.ok(again.logs.some((l) => l.msg === "secrets needed for users are unchanged"));

  // The full activation that follows reports what changed.
  const full = sb.run(sb.manifest([{ name: "hash", plaintext: "$6$new", neededForUsers: true }, { name: "api", plaintext: "api-2" }, { name: "extra" }]));
  assert.equal(full.status, 0);
  const active = full.logs.find((l) => l.msg === "generation 3 is active");
  assert.deepEqual(active?.modified, ["api"]);
  assert.deepEqual(active?.added, ["extra"]);
  assert.equal(active?.unchanged, 1);

  // At first boot there is no current generation: only the early secrets exist.
  const fresh = new Sandbox("phase-fresh");
  t.after(() => fresh.cleanup());
  assert.equal(fresh.run(fresh.manifest([{ name: "hash", neededForUsers: true }, { name: "api" }]), ["--phase", "users"]).status, 0);
  assert.deepEqual(readdirSync(fresh.secretsDir), ["hash"]);
});

test("no log line carries secret bytes, on success or failure", (t) => {
  const sb = new Sandbox("nolog");
  t.after(() => sb.cleanup());
  const marker = "S3CRET-MARKER-7f1e";
  const r1 = sb.run(sb.manifest([{ name: "a", plaintext: marker }, { name: "b", plaintext: `${marker}-b`, owner: "nobody-agx" }]), []);
  const r2 = sb.run(sb.manifest([{ name: "a", plaintext: `${marker}-2` }]), []);
  for (const r of [r1, r2]) {
    assert.ok(r.stderr.length > 0);
    assert.equal(r.stderr.includes("S3CRET"), false);
  }
});
