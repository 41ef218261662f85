// Change-aware activation end to end (issue 14): after the swap, the units of the secrets that
// changed are restarted or reloaded once each through systemctl, never at first boot; the journal
// names each change; `.status.json` records the run. systemctl here is a script that logs its arguments.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { AGENIXD, Sandbox, type SecretInput, treeHash, fakeSystemctl } from "./helpers/sandbox.js";
import { launchEnv } from "../scripts/launch.js";

const takeCalls = fakeSystemctl();

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

test(".status.json records the generation, each secret's units and change time, and the last run's failures", (t) => {
  const sb = new Sandbox("state");
  t.after(() => sb.cleanup());
  takeCalls();
  const a = sb.encrypt("a");
  assert.equal(activate(sb, [{ name: "a", file: a, restartUnits: ["a.service"] }]).status, 0);
  const statePath = join(sb.mountPoint, ".status.json");
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

function cli(args: string[], extraEnv: Record<string, string> = {}) {
  return spawnSync(process.execPath, [...AGENIXD, ...args], { encoding: "utf8", env: launchEnv({ ...process.env, NOTIFY_SOCKET: "", ...extraEnv }) });
}

test("--dry-run prints the changes and units and writes nothing", (t) => {
  const sb = new Sandbox("dry-run");
  t.after(() => sb.cleanup());
  takeCalls();
  const copyTarget = join(sb.root, "srv", "app", "token");
  const db = sb.encrypt("db v1");
  const tok = sb.encrypt("token v1");
  const base: SecretInput[] = [
    { name: "db", file: db, restartUnits: ["db.service"] },
    { name: "token", file: tok, path: copyTarget, symlink: false, owner: "0", reloadUnits: ["app.service"] },
    { name: "old", plaintext: "old", restartUnits: ["old.service"] },
  ];

  // Before any generation: nothing mounted, nothing made.
  const mountsBefore = readFileSync("/proc/self/mountinfo", "utf8");
  const first = cli(["activate", "--manifest", sb.manifest(base), "--dry-run"]);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /^dry run: no live generation at .*; every secret would be added and no unit restarted\nwould add secret db\nwould add secret token\nwould add secret old\n$/);
  assert.equal(readFileSync("/proc/self/mountinfo", "utf8"), mountsBefore, "nothing mounted");
  assert.equal(existsSync(sb.mountPoint) || existsSync(sb.secretsDir) || existsSync(copyTarget), false, "nothing created");

  assert.equal(sb.run(sb.manifest(base)).status, 0);
  takeCalls();
  const changed: SecretInput[] = [
    { ...base[0]!, file: sb.encrypt("db v2") },
    { ...base[1]!, mode: "0440" },
    { name: "new", plaintext: "new" },
  ];
  const manifest = sb.manifest(changed);
  const watched = [sb.mountPoint, sb.secretsDir, join(sb.root, "srv"), join(sb.root, "run")];
  const before = treeHash(...watched);
  // NIXOS_ACTION=dry-activate prints the same and also lists the units for switch-to-configuration:
  // test/dry-activation.test.ts.
  for (const run of [cli(["activate", "--manifest", manifest, "--dry-run"])]) {
    assert.equal(run.status, 0, run.stderr);
    assert.equal(
      run.stdout,
      `dry run: against generation 1 (${sb.secretsDir}), nothing written\n` +
        "would modify secret db: content\nwould modify secret token: mode\nwould add secret new\nwould remove secret old\n" +
        "would restart: db.service, old.service\nwould reload: app.service\n",
    );
    assert.doesNotMatch(run.stdout + run.stderr, /db v2/);
    assert.equal(treeHash(...watched), before, "the ramfs, secretsDir and the targets are untouched");
    assert.deepEqual(takeCalls(), [], "no unit touched");
  }
  assert.equal(sb.read("db"), "db v1");
});

test("agenixd status: the table, --json, and the exit status of a healthy, degraded and inactive machine", (t) => {
  const sb = new Sandbox("status-cli");
  t.after(() => sb.cleanup());
  takeCalls();
  const ok = sb.encrypt("v");
  const bad = sb.encrypt("b", ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]);

  const none = cli(["status", "--manifest", sb.manifest([{ name: "a", file: ok }])]);
  assert.equal(none.status, 3, none.stderr);
  assert.match(none.stdout, /no live generation/);

  const healthy = sb.manifest([{ name: "a", file: ok, restartUnits: ["a.service"], mode: "0440" }]);
  assert.equal(sb.run(healthy).status, 0);
  const table = cli(["status", "--manifest", healthy]);
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, new RegExp(`^${sb.secretsDir} -> ${sb.mountPoint}/1: generation 1, healthy\\n`));
  assert.match(table.stdout, /^SECRET +PATH +OWNER +GROUP +MODE +SIZE +CHANGED +UNITS$/m);
  assert.match(table.stdout, /^a +\S+\/run\/agenix\/a +root +root +0440 +1 +\d{4}-\d\d-\d\dT\S+ +restart a\.service$/m);

  const degraded = sb.manifest([{ name: "a", file: ok, restartUnits: ["a.service"], mode: "0440" }, { name: "b", file: bad }]);
  assert.equal(sb.run(degraded).status, 1);
  const json = cli(["status", "--manifest", degraded, "--json"]);
  assert.equal(json.status, 1, json.stderr);
  const parsed = JSON.parse(json.stdout);
  assert.equal(parsed.health, "degraded");
  assert.equal(parsed.generation, 2);
  assert.deepEqual(parsed.failures.map((f: { name: string }) => f.name), ["b"]);
  assert.deepEqual(parsed.secrets.map((s: { name: string; missing: boolean }) => [s.name, s.missing]), [["a", false], ["b", true]]);
});
