// `agenixd status`: the live generation as the file system has it, with the last run's record.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chownSync, mkdirSync, mkdtempSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { collectStatus, renderStatus, STATUS_EXIT } from "../src/status.js";
import { carryChangeTimes, readState, statePath, writeState, type RunState } from "../src/state.js";

function layout(): { root: string; secretsDir: string; mountPoint: string; passwd: string; group: string } {
  const root = mkdtempSync("/tmp/agenixd-status-");
  const mountPoint = join(root, "agenix.d");
  mkdirSync(join(mountPoint, "2", "db"), { recursive: true });
  writeFileSync(join(mountPoint, "2", "db", "password"), "hunter2", { mode: 0o440 });
  chownSync(join(mountPoint, "2", "db", "password"), 70, 71);
  writeFileSync(join(mountPoint, "2", "token"), "0123456789", { mode: 0o400 });
  symlinkSync(join(mountPoint, "2"), join(root, "agenix"));
  const passwd = join(root, "passwd");
  writeFileSync(passwd, "root:x:0:0::/root:/bin/sh\npostgres:x:70:71::/var/empty:/bin/sh\n");
  const group = join(root, "group");
  writeFileSync(group, "root:x:0:\npostgres:x:71:\n");
  return { root, secretsDir: join(root, "agenix"), mountPoint, passwd, group };
}

const state = (mountPoint: string, over: Partial<RunState> = {}): RunState => ({
  version: 1,
  manifest: "/nix/store/x-agenixd-manifest.json",
  generation: 2,
  finishedAt: "2026-12-01T03:00:00.000Z",
  secrets: [
    { name: "db/password", path: "/run/agenix/db/password", restartUnits: ["postgresql.service"], reloadUnits: [], changedAt: "2026-12-01T02:00:00.000Z" },
    { name: "token", path: "/var/lib/app/token", restartUnits: [], reloadUnits: ["app.service"], changedAt: "2026-12-01T03:00:00.000Z" },
  ],
  failures: [],
  ...over,
});

test("the state file is written 0600 and atomically, and read back; a missing or foreign one reads as none", () => {
  const { mountPoint } = layout();
  assert.equal(readState(mountPoint), undefined);
  writeState(mountPoint, state(mountPoint));
  assert.equal(statSync(statePath(mountPoint)).mode & 0o777, 0o600);
  assert.deepEqual(readState(mountPoint), state(mountPoint));
  writeState(mountPoint, state(mountPoint, { generation: 3 }));
  assert.equal(readState(mountPoint)?.generation, 3);
  writeFileSync(statePath(mountPoint), "{\"version\": 7}");
  assert.equal(readState(mountPoint), undefined);
});

test("a change time moves only for the secrets that changed", () => {
  const at = carryChangeTimes(state("/x").secrets, new Set(["token"]), "NOW");
  assert.equal(at("db/password"), "2026-12-01T02:00:00.000Z");
  assert.equal(at("token"), "NOW");
  assert.equal(at("new"), "NOW");
  assert.equal(carryChangeTimes(undefined, new Set(), "NOW")("db/password"), "NOW");
});

test("a healthy generation: every secret with owner, group, mode and size from the file system", () => {
  const l = layout();
  writeState(l.mountPoint, state(l.mountPoint));
  const s = collectStatus(l.secretsDir, l.mountPoint, l);
  assert.equal(s.health, "healthy");
  assert.equal(STATUS_EXIT[s.health], 0);
  assert.equal(s.generation, 2);
  assert.deepEqual(
    s.secrets.map((x) => [x.name, x.owner, x.group, x.mode, x.size, x.missing]),
    [
      ["db/password", "postgres", "postgres", "0440", 7, false],
      ["token", "root", "root", "0400", 10, false],
    ],
  );
  const text = renderStatus(s);
  assert.match(text, /generation 2, healthy/);
  assert.match(text, /^db\/password +\/run\/agenix\/db\/password +postgres +postgres +0440 +7 +2026-12-01T02:00:00\.000Z +restart postgresql\.service$/m);
  assert.match(text, /^token +\/var\/lib\/app\/token +root +root +0400 +10 +\S+ +reload app\.service$/m);
  assert.doesNotMatch(text, /hunter2/);
});

test("failures of the last run and a missing file make it degraded; no generation is inactive", () => {
  const l = layout();
  writeState(l.mountPoint, state(l.mountPoint, { failures: [{ name: "token", file: "/nix/store/t.age", cause: "no identity matched", keptPrevious: true }] }));
  const s = collectStatus(l.secretsDir, l.mountPoint, l);
  assert.equal(s.health, "degraded");
  assert.equal(STATUS_EXIT[s.health], 1);
  assert.match(renderStatus(s), /failed in the last activation \(1\):\n  token: no identity matched \(previous value kept\)/);

  writeState(l.mountPoint, state(l.mountPoint, { secrets: [...state(l.mountPoint).secrets, { name: "gone", path: "/run/agenix/gone", restartUnits: [], reloadUnits: [], changedAt: "t" }] }));
  const missing = collectStatus(l.secretsDir, l.mountPoint, l);
  assert.equal(missing.health, "degraded");
  assert.match(renderStatus(missing), /^gone .* missing /m);

  const empty = mkdtempSync("/tmp/agenixd-status-none-");
  const none = collectStatus(join(empty, "agenix"), join(empty, "agenix.d"));
  assert.equal(none.health, "inactive");
  assert.equal(STATUS_EXIT[none.health], 3);
  assert.match(renderStatus(none), /no live generation/);
});

test("templates: a table of their own from rendered/, in --json too; a template's failure says so; an older state file has none", () => {
  const l = layout();
  mkdirSync(join(l.mountPoint, "2", "rendered", "app"), { recursive: true });
  writeFileSync(join(l.mountPoint, "2", "rendered", "app", "config.toml"), 'token = "hunter2"\n', { mode: 0o440 });
  const templates = [
    { name: "app/config.toml", path: "/run/agenix/rendered/app/config.toml", restartUnits: ["app.service"], reloadUnits: [], changedAt: "2026-12-01T03:00:00.000Z" },
    { name: "wg0.conf", path: "/etc/wireguard/wg0.conf", restartUnits: [], reloadUnits: [], changedAt: "2026-12-01T03:00:00.000Z" },
  ];
  writeState(l.mountPoint, state(l.mountPoint, {
    templates,
    failures: [{ name: "wg0.conf", file: "/nix/store/w", cause: 'uses secret "wg-key", which failed in this activation', keptPrevious: false, subject: "template" }],
  }));
  const s = collectStatus(l.secretsDir, l.mountPoint, l);
  assert.equal(s.health, "degraded");
  assert.deepEqual(s.templates.map((t) => [t.name, t.mode, t.size, t.missing]), [["app/config.toml", "0440", 18, false], ["wg0.conf", undefined, undefined, true]]);
  const text = renderStatus(s);
  assert.match(text, /^TEMPLATE +PATH +OWNER +GROUP +MODE +SIZE +CHANGED +UNITS$/m);
  assert.match(text, /^app\/config\.toml +\/run\/agenix\/rendered\/app\/config\.toml +root +root +0440 +18 +\S+ +restart app\.service$/m);
  assert.match(text, /^wg0\.conf +\/etc\/wireguard\/wg0\.conf .* missing /m);
  assert.match(text, /^  template wg0\.conf: uses secret "wg-key", which failed in this activation$/m);
  assert.doesNotMatch(text, /hunter2/);

  writeState(l.mountPoint, state(l.mountPoint));
  const old = collectStatus(l.secretsDir, l.mountPoint, l);
  assert.deepEqual(old.templates, []);
  assert.equal(old.health, "healthy");
  assert.doesNotMatch(renderStatus(old), /TEMPLATE/);
});
