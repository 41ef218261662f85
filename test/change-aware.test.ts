// Change-aware activation end to end (issue 14): after the swap, the units of the secrets that
// changed are restarted or reloaded once each through systemctl, never at first boot; the journal
// names each change; `status.json` records the run. systemctl here is a script that logs its arguments.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Sandbox, type SecretInput } from "./helpers/sandbox.js";

const fakeDir = mkdtempSync("/tmp/agenixd-systemctl-");
const calls = join(fakeDir, "calls");
const systemctl = join(fakeDir, "systemctl");
writeFileSync(systemctl, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${calls}\n`);
chmodSync(systemctl, 0o755);
process.env.AGENIXD_SYSTEMCTL = systemctl;

function takeCalls(): string[] {
  if (!existsSync(calls)) return [];
  const lines = readFileSync(calls, "utf8").trim().split("\n").filter(Boolean);
  writeFileSync(calls, "");
  return lines;
}

function activate(sb: Sandbox, secrets: SecretInput[]) {
  const r = sb.run(sb.manifest(secrets));
  return { ...r, calls: takeCalls(), changes: r.logs.filter((l) => typeof l.change === "string").map((l) => l.msg) };
}

test("nothing is restarted at first boot; an unchanged activation restarts nothing; a content change restarts once", (t) => {
  const sb = new Sandbox("restart");
  t.after(() => sb.cleanup());
  takeCalls();
  const db = sb.encrypt("db v1");
  const api = sb.encrypt("api");
  const secrets = (dbFile: string): SecretInput[] => [
    { name: "db", file: dbFile, restartUnits: ["app.service", "db.service"] },
    { name: "api", file: api, restartUnits: ["app.service"], reloadUnits: ["nginx.service"] },
  ];

  const first = activate(sb, secrets(db));
  assert.equal(first.status, 0, first.stderr);
  assert.deepEqual(first.calls, [], "no unit is touched at first boot");
  assert.deepEqual(first.changes, ["adding secret db", "adding secret api"]);

  const same = activate(sb, secrets(db));
  assert.equal(same.status, 0, same.stderr);
  assert.deepEqual(same.calls, []);
  assert.deepEqual(same.changes, []);

  const changed = activate(sb, secrets(sb.encrypt("db v2")));
  assert.equal(changed.status, 0, changed.stderr);
  assert.deepEqual(changed.calls, ["--no-block try-restart -- app.service db.service"], "each unit once, after the swap");
  assert.deepEqual(changed.changes, ["modifying secret db: content"]);
  const unitLines = changed.logs.filter((l) => l.unit !== undefined);
  assert.deepEqual(unitLines.map((l) => [l.unit, l.action, l.secrets]), [["app.service", "restart", ["db"]], ["db.service", "restart", ["db"]]]);
  assert.equal(sb.read("db"), "db v2");
  assert.doesNotMatch(changed.stderr, /db v2/, "no value in the logs");
});

test("a mode-only or owner change restarts; reloadUnits reload; a unit both restarted and reloaded is restarted only", (t) => {
  const sb = new Sandbox("aspects");
  t.after(() => sb.cleanup());
  takeCalls();
  const tls = sb.encrypt("key");
  const pw = sb.encrypt("pw");
  const base: SecretInput[] = [
    { name: "tls", file: tls, reloadUnits: ["nginx.service"] },
    { name: "pw", file: pw, restartUnits: ["app.service", "nginx.service"] },
  ];
  assert.equal(activate(sb, base).status, 0);

  const modeOnly = activate(sb, [{ ...base[0]!, mode: "0440" }, base[1]!]);
  assert.equal(modeOnly.status, 0, modeOnly.stderr);
  assert.deepEqual(modeOnly.changes, ["modifying secret tls: mode"]);
  assert.deepEqual(modeOnly.calls, ["--no-block try-reload-or-restart -- nginx.service"]);

  const both = activate(sb, [{ ...base[0]!, mode: "0440", group: "1" }, { ...base[1]!, file: sb.encrypt("pw2") }]);
  assert.deepEqual(both.changes, ["modifying secret tls: group", "modifying secret pw: content"]);
  assert.deepEqual(both.calls, ["--no-block try-restart -- app.service nginx.service"], "nginx.service is restarted by pw, so not reloaded as well");
  assert.match(String(both.logs.find((l) => l.msg?.toString().startsWith("generation 3 is active"))?.msg), /generation 3/);
});

test("a failed secret that kept its previous value restarts nothing; a removed secret restarts its units", (t) => {
  const sb = new Sandbox("failed-removed");
  t.after(() => sb.cleanup());
  takeCalls();
  const a = sb.encrypt("a");
  const old = sb.encrypt("old");
  assert.equal(activate(sb, [{ name: "a", file: a, restartUnits: ["a.service"] }, { name: "old", file: old, restartUnits: ["old.service"] }]).status, 0);

  const stranger = sb.encrypt("a v2", ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]);
  const failed = activate(sb, [{ name: "a", file: stranger, restartUnits: ["a.service"] }, { name: "old", file: old, restartUnits: ["old.service"] }]);
  assert.equal(failed.status, 1);
  assert.equal(sb.read("a"), "a", "previous value kept");
  assert.deepEqual(failed.calls, []);
  assert.deepEqual(failed.changes, []);

  const removed = activate(sb, [{ name: "a", file: a, restartUnits: ["a.service"] }]);
  assert.equal(removed.status, 0, removed.stderr);
  assert.deepEqual(removed.changes, ["removing secret old"]);
  assert.deepEqual(removed.calls, ["--no-block try-restart -- old.service"]);
});

test("status.json records the generation, each secret's units and change time, and the last run's failures", (t) => {
  const sb = new Sandbox("state");
  t.after(() => sb.cleanup());
  takeCalls();
  const a = sb.encrypt("a");
  assert.equal(activate(sb, [{ name: "a", file: a, restartUnits: ["a.service"] }]).status, 0);
  const statePath = join(sb.mountPoint, "status.json");
  const first = JSON.parse(readFileSync(statePath, "utf8"));
  assert.equal(first.generation, 1);
  assert.deepEqual(first.secrets.map((s: { name: string; restartUnits: string[] }) => [s.name, s.restartUnits]), [["a", ["a.service"]]]);
  assert.deepEqual(first.failures, []);

  const bad = sb.encrypt("b", ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]);
  assert.equal(activate(sb, [{ name: "a", file: a, restartUnits: ["a.service"] }, { name: "b", file: bad }]).status, 1);
  const second = JSON.parse(readFileSync(statePath, "utf8"));
  assert.equal(second.generation, 2);
  assert.equal(second.secrets[0].changedAt, first.secrets[0].changedAt, "an unchanged secret keeps its change time");
  assert.deepEqual(second.failures.map((f: { name: string }) => f.name), ["b"]);
  assert.doesNotMatch(readFileSync(statePath, "utf8"), /"a"\s*:\s*"a"/);
});

test("a version 1 manifest still activates, with no units to act on", (t) => {
  const sb = new Sandbox("v1");
  t.after(() => sb.cleanup());
  takeCalls();
  const file = sb.manifest([{ name: "a", plaintext: "1" }]);
  assert.equal(JSON.parse(readFileSync(file, "utf8")).version, 1);
  assert.equal(sb.run(file).status, 0);
  const r = activate(sb, [{ name: "a", plaintext: "2" }]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.changes, ["modifying secret a: content"]);
  assert.deepEqual(r.calls, []);
});
