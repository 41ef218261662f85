// The password phase and change-aware activation (issue 19, src/run-record.ts): the full run
// compares itself with this boot's last full run, never with the users phase's record, so the
// first boot restarts nothing and a secret removed in a switch that also changes a password still
// fires its restartUnits. End to end with a fake systemctl, and the module's rules on their own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Sandbox, type SecretInput, fakeSystemctl } from "./helpers/sandbox.js";
import { currentBootId, lastFullRun, runRecordFields } from "../src/run-record.js";
import type { RunState, SecretRecord } from "../src/state.js";

const takeCalls = fakeSystemctl();

function run(sb: Sandbox, secrets: SecretInput[], phase?: "users") {
  const r = sb.run(sb.manifest(secrets), phase ? ["--phase", phase] : []);
  return { ...r, calls: takeCalls(), changes: r.logs.filter((l) => typeof l.change === "string").map((l) => l.msg) };
}

const rec = (name: string, restartUnits: string[] = []): SecretRecord => ({ name, path: `/run/agenix/${name}`, restartUnits, reloadUnits: [], changedAt: "2026-01-01T00:00:00.000Z" });
const state = (extra: Partial<RunState>): RunState => ({ version: 1, manifest: "", generation: 1, finishedAt: "", secrets: [rec("users-phase-only")], failures: [], ...extra });

test("perl boot: the users phase then the full run restart nothing; a switch removing x and changing a password fires x's units", (t) => {
  const sb = new Sandbox("password-phase");
  t.after(() => sb.cleanup());
  takeCalls();
  const pw1 = sb.encrypt("hash-1");
  const app = sb.encrypt("app");
  const x = sb.encrypt("x");
  const boot: SecretInput[] = [
    { name: "pw", file: pw1, neededForUsers: true, restartUnits: ["pw.service"] },
    { name: "app", file: app, restartUnits: ["app.service"] },
    { name: "x", file: x, restartUnits: ["x.service"] },
  ];
  // Boot under perl user creation: the `agenixdUsers` snippet, then agenixd.service.
  const users = run(sb, boot, "users");
  assert.equal(users.status, 0, users.stderr);
  assert.deepEqual(users.calls, []);
  const full = run(sb, boot);
  assert.equal(full.status, 0, full.stderr);
  assert.deepEqual(full.calls, [], "no unit is restarted at first boot, though the users phase left a generation");
  const afterBoot = JSON.parse(readFileSync(join(sb.mountPoint, ".status.json"), "utf8"));
  assert.equal(afterBoot.bootId, currentBootId());
  assert.deepEqual(afterBoot.fullRun.secrets.map((s: SecretRecord) => s.name), ["pw", "app", "x"]);

  // A switch: the password changes and x is removed. The users phase runs first, then the full run.
  const next: SecretInput[] = [
    { name: "pw", file: sb.encrypt("hash-2"), neededForUsers: true, restartUnits: ["pw.service"] },
    { name: "app", file: app, restartUnits: ["app.service"] },
  ];
  const users2 = run(sb, next, "users");
  assert.equal(users2.status, 0, users2.stderr);
  assert.deepEqual(users2.calls, ["--no-block try-restart -- pw.service"]);
  const carried = JSON.parse(readFileSync(join(sb.mountPoint, ".status.json"), "utf8"));
  assert.deepEqual(carried.fullRun.secrets.map((s: SecretRecord) => s.name), ["pw", "app", "x"], "the users phase keeps the last full run's record");
  const full2 = run(sb, next);
  assert.equal(full2.status, 0, full2.stderr);
  assert.deepEqual(full2.changes, ["removing secret x"]);
  assert.deepEqual(full2.calls, ["--no-block try-restart -- x.service"], "the removed secret's restartUnits fire");
  assert.equal(sb.read("pw"), "hash-2");
});

test("a record from another boot means first boot; an older agenixd's record (no boot id) is a full run's", (t) => {
  const sb = new Sandbox("boot-id");
  t.after(() => sb.cleanup());
  takeCalls();
  const v1 = sb.encrypt("v1");
  const secrets = (file: string): SecretInput[] => [{ name: "s", file, restartUnits: ["s.service"] }];
  assert.equal(run(sb, secrets(v1)).status, 0);
  const path = join(sb.mountPoint, ".status.json");
  const recorded = JSON.parse(readFileSync(path, "utf8"));

  writeFileSync(path, JSON.stringify({ ...recorded, bootId: "00000000-0000-0000-0000-000000000000", fullRun: { ...recorded.fullRun, bootId: "00000000-0000-0000-0000-000000000000" } }));
  const otherBoot = run(sb, secrets(sb.encrypt("v2")));
  assert.equal(otherBoot.status, 0, otherBoot.stderr);
  assert.deepEqual(otherBoot.calls, [], "no full run recorded in this boot: first boot, nothing restarted");

  const legacy = JSON.parse(readFileSync(path, "utf8"));
  delete legacy.bootId;
  delete legacy.fullRun;
  writeFileSync(path, JSON.stringify(legacy));
  const upgraded = run(sb, secrets(sb.encrypt("v3")));
  assert.equal(upgraded.status, 0, upgraded.stderr);
  assert.deepEqual(upgraded.calls, ["--no-block try-restart -- s.service"], "an upgrade from an older agenixd still restarts");
});

test("lastFullRun and runRecordFields: the rules on their own", () => {
  const id = "6f1c7a3e-1111-4222-8333-444455556666";
  const full = { bootId: id, secrets: [rec("a", ["a.service"])] };
  assert.equal(lastFullRun(undefined, id), undefined);
  assert.deepEqual(lastFullRun(state({ bootId: id, fullRun: full }), id), full);
  assert.equal(lastFullRun(state({ bootId: id }), id), undefined, "only the users phase ran in this boot");
  assert.equal(lastFullRun(state({ bootId: "other", fullRun: { ...full, bootId: "other" } }), id), undefined);
  assert.equal(lastFullRun(state({ bootId: id, fullRun: { ...full, bootId: "other" } }), id), undefined);
  assert.equal(lastFullRun(state({ bootId: "", fullRun: { ...full, bootId: "" } }), ""), undefined, "an unreadable boot id never matches");
  const legacy = state({});
  assert.equal(lastFullRun(legacy, id), legacy);

  const secrets = [rec("b")];
  assert.deepEqual(runRecordFields("all", id, state({ bootId: id, fullRun: full }), secrets, undefined), { bootId: id, fullRun: { bootId: id, secrets } });
  assert.deepEqual(runRecordFields("users", id, state({ bootId: id, fullRun: full }), secrets, undefined), { bootId: id, fullRun: full });
  assert.deepEqual(runRecordFields("users", id, state({ bootId: "other", fullRun: { ...full, bootId: "other" } }), secrets, undefined), { bootId: id });
  assert.deepEqual(runRecordFields("users", id, undefined, secrets, undefined), { bootId: id });
});

test("currentBootId reads the kernel's id and refuses anything else", () => {
  assert.match(currentBootId(), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  const dir = mkdtempSync(join(tmpdir(), "bootid-"));
  try {
    writeFileSync(join(dir, "id"), "../../etc\n");
    assert.equal(currentBootId(join(dir, "id")), "");
    assert.equal(currentBootId(join(dir, "missing")), "");
  } finally {
    rmSync(dir, { recursive: true });
  }
});
