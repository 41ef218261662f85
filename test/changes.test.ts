// Change detection between two generations, the switch report's lines, and the unit actions they call for.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { changedAspects, compareSecret, describeChange, removedSecrets, summarizeChanges, type SecretChange, type SecretState } from "../src/changes.js";
import { applyUnitActions, isUnitName, planUnitActions, type UnitTriggers } from "../src/units.js";

const base: SecretState = { data: Buffer.from("v1"), uid: 0, gid: 0, mode: 0o400 };

test("each aspect that differs is named, in a fixed order; nothing for an identical secret", () => {
  assert.deepEqual(changedAspects(base, { ...base, data: Buffer.from("v1") }), []);
  assert.deepEqual(changedAspects(base, { ...base, data: Buffer.from("v2") }), ["content"]);
  assert.deepEqual(changedAspects(base, { ...base, data: Buffer.from("v1 longer") }), ["content"]);
  assert.deepEqual(changedAspects(base, { ...base, uid: 1000 }), ["owner"]);
  assert.deepEqual(changedAspects(base, { ...base, gid: 100 }), ["group"]);
  assert.deepEqual(changedAspects(base, { ...base, mode: 0o440 }), ["mode"]);
  assert.deepEqual(changedAspects(base, { data: Buffer.from("x"), uid: 1, gid: 2, mode: 0o444 }), ["content", "owner", "group", "mode"]);
  // stat(2)'s file type bits are not a change.
  assert.deepEqual(changedAspects(base, { ...base, mode: 0o100400 }), []);
});

test("added, modified and removed secrets, and the lines the switch report prints", () => {
  assert.deepEqual(compareSecret("a", undefined, base), { kind: "added", name: "a" });
  assert.equal(compareSecret("a", base, { ...base }), undefined);
  const modified = compareSecret("db/password", base, { ...base, data: Buffer.from("v2"), mode: 0o440 });
  assert.deepEqual(modified, { kind: "modified", name: "db/password", aspects: ["content", "mode"] });
  const removed = removedSecrets(["a", "old", "b"], new Set(["a", "b"]));
  assert.deepEqual(removed, [{ kind: "removed", name: "old" }]);

  assert.equal(describeChange(modified!), "modifying secret db/password: content, mode");
  assert.equal(describeChange({ kind: "added", name: "a" }), "adding secret a");
  assert.equal(describeChange(removed[0]!), "removing secret old");
  assert.equal(describeChange({ kind: "added", name: "cfg" }, "template"), "adding template cfg");
  assert.equal(summarizeChanges([modified!, ...removed, { kind: "added", name: "a" }, { kind: "added", name: "c" }]), "2 added, 1 modified, 1 removed");
});

test("each unit is acted on once; a unit both restarted and reloaded is only restarted", () => {
  const triggers: Record<string, UnitTriggers> = {
    a: { restartUnits: ["web.service", "db.service"], reloadUnits: ["nginx.service"] },
    b: { restartUnits: ["web.service"], reloadUnits: ["db.service", "nginx.service", "haproxy.service"] },
    quiet: { restartUnits: [], reloadUnits: [] },
  };
  const changes: SecretChange[] = [
    { kind: "modified", name: "a", aspects: ["content"] },
    { kind: "removed", name: "b" },
    { kind: "added", name: "quiet" },
    { kind: "added", name: "unknown" },
  ];
  const plan = planUnitActions(changes, (c) => triggers[c.name]);
  assert.deepEqual(plan, { restart: ["web.service", "db.service"], reload: ["nginx.service", "haproxy.service"] });
  assert.deepEqual(planUnitActions([], (c) => triggers[c.name]), { restart: [], reload: [] });
});

test("unit names that systemctl could read as options or several words are not unit names", () => {
  for (const ok of ["web.service", "getty@tty1.service", "foo", "sys-devices-x\\x2dy.device", "a:b_c.target"]) assert.ok(isUnitName(ok), ok);
  for (const bad of ["", "-x", "--now", "a b", "a\nb", "a/b", "x".repeat(256), "$(reboot)"]) assert.equal(isUnitName(bad), false, JSON.stringify(bad));
});

test("systemctl is called once per kind of action, without blocking, and its failure is reported, not thrown", async () => {
  const calls: string[][] = [];
  const results = await applyUnitActions({ restart: ["a.service", "b.service"], reload: ["c.service"] }, async (cmd, args) => {
    calls.push([cmd, ...args]);
    if (args.includes("try-reload-or-restart")) throw new Error("systemctl exited with status 1");
  }, "/x/systemctl");
  assert.deepEqual(calls, [
    ["/x/systemctl", "--no-block", "try-restart", "--", "a.service", "b.service"],
    ["/x/systemctl", "--no-block", "try-reload-or-restart", "--", "c.service"],
  ]);
  assert.deepEqual(results, [
    { action: "restart", units: ["a.service", "b.service"] },
    { action: "reload", units: ["c.service"], error: "systemctl exited with status 1" },
  ]);
  assert.deepEqual(await applyUnitActions({ restart: [], reload: [] }, async () => assert.fail("no call")), []);
});

test("the real runner runs a systemctl executable with exactly those arguments", async () => {
  const { runCommand } = await import("../src/ramfs.js");
  const dir = mkdtempSync("/tmp/agenixd-systemctl-");
  const log = join(dir, "calls");
  const fake = join(dir, "systemctl");
  writeFileSync(fake, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${log}\n`);
  chmodSync(fake, 0o755);
  const results = await applyUnitActions({ restart: ["a.service"], reload: ["b.service", "c.service"] }, runCommand, fake);
  assert.deepEqual(results.map((r) => r.error), [undefined, undefined]);
  assert.equal(readFileSync(log, "utf8"), "--no-block try-restart -- a.service\n--no-block try-reload-or-restart -- b.service c.service\n");
});

test("a user's host puts its leading arguments (--user) before every systemctl call", async () => {
  const calls: string[][] = [];
  await applyUnitActions({ restart: ["a.service"], reload: [] }, async (cmd, args) => void calls.push([cmd, ...args]), "/x/systemctl", ["--user"]);
  assert.deepEqual(calls, [["/x/systemctl", "--user", "--no-block", "try-restart", "--", "a.service"]]);
});
