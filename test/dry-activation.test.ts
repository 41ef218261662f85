// switch-to-configuration's dry-activation lists (issue 19): under `nixos-rebuild dry-activate`
// agenixd appends the running units it would restart or reload to
// /run/nixos/dry-activation-{restart,reload}-list, which switch-to-configuration-ng reads into
// its "would restart/reload/start the following units" summary. Written as root, through the
// same trust rules as every other write.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DRY_RELOAD_LIST, DRY_RESTART_LIST, recordDryActivation, systemctlActive } from "../src/dry-activation.js";
import { TrustError } from "../src/secure-fs.js";
import { AGENIXD, Sandbox, treeHash } from "./helpers/sandbox.js";
import { launchEnv } from "../scripts/launch.js";

const running = (...units: string[]) => async () => new Set(units);

function scratch(t: { after(fn: () => void): void }): string {
  const root = mkdtempSync("/tmp/agenixd-dry-lists-");
  t.after(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

/** A systemctl whose `is-active` answers from `states` (unit -> state, default inactive) and exits 3 as systemctl does when one is not active. */
function answeringSystemctl(root: string, states: Record<string, string>): string {
  const file = join(root, "systemctl");
  const cases = Object.entries(states).map(([u, s]) => `${u}) echo ${s} ;;`).join(" ");
  writeFileSync(file, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${root}/calls\n[ "$1" = is-active ] || exit 0\nshift; [ "$1" = -- ] && shift\nfor u; do case "$u" in ${cases} *) echo inactive ;; esac; done\nexit 3\n`, { mode: 0o755 });
  return file;
}

test("lists the running units only, appending to what other snippets wrote, in a directory made 0755", async (t) => {
  const dir = join(scratch(t), "run", "nixos");
  const listed = await recordDryActivation({ restart: ["app.service", "idle.service"], reload: ["web.service", "gone.service"] }, running("app.service", "web.service"), dir);
  assert.deepEqual(listed, { restart: ["app.service"], reload: ["web.service"] });
  assert.equal((lstatSync(dir).mode & 0o7777).toString(8), "755");
  assert.equal(readFileSync(join(dir, DRY_RESTART_LIST), "utf8"), "app.service\n");
  assert.equal(readFileSync(join(dir, DRY_RELOAD_LIST), "utf8"), "web.service\n");
  writeFileSync(join(dir, DRY_RESTART_LIST), "other-snippet.service\n");
  await recordDryActivation({ restart: ["app.service"], reload: [] }, running("app.service"), dir);
  assert.equal(readFileSync(join(dir, DRY_RESTART_LIST), "utf8"), "other-snippet.service\napp.service\n", "appended, never replaced");
  const st = lstatSync(join(dir, DRY_RELOAD_LIST));
  assert.deepEqual([st.uid, st.isFile()], [0, true]);
});

test("nothing running, nothing to do: no directory, no file, no query when there are no units", async (t) => {
  const dir = join(scratch(t), "nixos");
  let asked = 0;
  await recordDryActivation({ restart: [], reload: [] }, async () => (asked++, new Set()), dir);
  assert.equal(asked, 0);
  await recordDryActivation({ restart: ["idle.service"], reload: [] }, running(), dir);
  assert.equal(existsSync(dir), false);
});

test("refuses a list or a directory another user could have planted, and writes nothing through it", async (t) => {
  const root = scratch(t);
  const actions = { restart: ["app.service"], reload: ["web.service"] };
  const active = running("app.service", "web.service");

  // The directory a symlink into a user's directory.
  const theirs = join(root, "theirs");
  mkdirSync(theirs);
  chownSync(theirs, 65534, 65534);
  const linked = join(root, "linked");
  symlinkSync(theirs, linked);
  await assert.rejects(recordDryActivation(actions, active, linked), TrustError);
  const owned = join(root, "owned");
  mkdirSync(owned);
  chownSync(owned, 65534, 65534);
  await assert.rejects(recordDryActivation(actions, active, owned), (e: Error) => e instanceof TrustError && /owned by uid 65534/.test(e.message));
  assert.equal(existsSync(join(owned, DRY_RESTART_LIST)), false);

  // A list that is a symlink (to a file root would otherwise append to), or a user's file.
  const dir = join(root, "nixos");
  mkdirSync(dir);
  const victim = join(root, "victim");
  writeFileSync(victim, "untouched\n");
  symlinkSync(victim, join(dir, DRY_RESTART_LIST));
  await assert.rejects(recordDryActivation(actions, active, dir), /dry-activation-restart-list is a symlink; refusing to write through it/);
  assert.equal(readFileSync(victim, "utf8"), "untouched\n");
  rmSync(join(dir, DRY_RESTART_LIST));
  writeFileSync(join(dir, DRY_RESTART_LIST), "");
  chownSync(join(dir, DRY_RESTART_LIST), 65534, 65534);
  await assert.rejects(recordDryActivation(actions, active, dir), /owned by uid 65534 .*only root may write it/);
  assert.equal(readFileSync(join(dir, DRY_RESTART_LIST), "utf8"), "");
});

test("systemctlActive: one state per unit, is-active's exit 3 is an answer, a short answer is an error", async (t) => {
  const root = scratch(t);
  const systemctl = answeringSystemctl(root, { "a.service": "active", "b.service": "reloading", "c.service": "failed" });
  const active = await systemctlActive(systemctl)(["a.service", "b.service", "c.service", "d.service"]);
  assert.deepEqual([...active].sort(), ["a.service", "b.service"]);
  assert.equal(readFileSync(join(root, "calls"), "utf8"), "is-active -- a.service b.service c.service d.service\n");
  const mute = join(root, "mute");
  writeFileSync(mute, "#!/bin/sh\nexit 1\n", { mode: 0o755 });
  await assert.rejects(systemctlActive(mute)(["a.service"]), /systemctl is-active gave 0 states for 1 units/);
});

test("agenixd under NIXOS_ACTION=dry-activate prints its plan, lists the running units for switch-to-configuration, and writes nothing else", (t) => {
  const sb = new Sandbox("dry-lists");
  t.after(() => sb.cleanup());
  const bin = scratch(t);
  const systemctl = answeringSystemctl(bin, { "db.service": "active", "app.service": "active" });
  const env = launchEnv({ ...process.env, NOTIFY_SOCKET: "", AGENIXD_SYSTEMCTL: systemctl });
  const base = [
    { name: "db", file: sb.encrypt("db v1"), restartUnits: ["db.service", "stopped.service"] },
    { name: "token", file: sb.encrypt("token v1"), reloadUnits: ["app.service"] },
  ];
  assert.equal(spawnSync(process.execPath, [...AGENIXD, "activate", "--manifest", sb.manifest(base)], { env }).status, 0);
  writeFileSync(join(bin, "calls"), "");
  const manifest = sb.manifest([{ ...base[0]!, file: sb.encrypt("db v2") }, { ...base[1]!, file: sb.encrypt("token v2") }]);
  const before = treeHash(sb.mountPoint, sb.secretsDir);
  // A /run of its own (a tmpfs in a mount namespace of the child's), so the machine's /run/nixos is never touched.
  const script = `mount -t tmpfs tmpfs /run && "$@"; status=$?; for f in /run/nixos/*; do echo "== $f $(stat -c '%a %U' "$f")"; cat "$f"; done; exit $status`;
  const r = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", script, "sh", process.execPath, ...AGENIXD, "activate", "--manifest", manifest], {
    encoding: "utf8",
    env: { ...env, NIXOS_ACTION: "dry-activate" },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stdout,
    `dry run: against generation 1 (${sb.secretsDir}), nothing written\n` +
      "would modify secret db: content\nwould modify secret token: content\n" +
      "would restart: db.service, stopped.service\nwould reload: app.service\n" +
      "== /run/nixos/dry-activation-reload-list 600 root\napp.service\n" +
      "== /run/nixos/dry-activation-restart-list 600 root\ndb.service\n",
  );
  assert.equal(readFileSync(join(bin, "calls"), "utf8"), "is-active -- db.service stopped.service app.service\n", "asked, and nothing restarted");
  assert.equal(treeHash(sb.mountPoint, sb.secretsDir), before);
  assert.equal(sb.read("db"), "db v1");
});
