// `agenixd activate --user` as a real unprivileged user (useradd, setpriv) on a real tmpfs
// XDG_RUNTIME_DIR, in a private mount namespace: the same pipeline as the system unit, with the
// user's host (src/user-host.ts): no mount, no chown, the user as the only trusted owner.
import { test } from "node:test";
import assert from "node:assert/strict";
import { after } from "node:test";
import { chmodSync, chownSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execFileSync, spawnSync } from "node:child_process";
import { AGENIXD, Sandbox, parseLogs, withUser } from "./helpers/sandbox.js";
import { launchEnv } from "../scripts/launch.js";
import { expandRuntimeDir } from "../src/user-host.js";

/**
 * node and dist/ where the unprivileged user can read them: the checkout (and a node installed in
 * it, as CI's .ci/node) may be below a directory only root can enter, such as a mktemp -d clone.
 */
const readable = mkdtempSync("/tmp/agenixd-user-dist-");
after(() => rmSync(readable, { recursive: true, force: true }));
chmodSync(readable, 0o755);
const DIST = fileURLToPath(new URL("../../dist", import.meta.url));
cpSync(DIST, join(readable, "dist"), { recursive: true });
const NODE = join(readable, "node");
copyFileSync(process.execPath, NODE);
chmodSync(NODE, 0o755);
const USER_AGENIXD = AGENIXD.map((a) => (a.startsWith(DIST) ? join(readable, "dist", a.slice(DIST.length)) : a));

function mode(path: string): number {
  return statSync(path).mode & 0o7777;
}

/** A sandbox the user can read (ciphertext and the store only), its key the user's, a tmpfs as its runtime dir. */
function userSandbox(label: string, t: { after(f: () => void): void }) {
  const sb = new Sandbox(label);
  const user = withUser(`agenixd-u${process.pid % 10000}`);
  const other = withUser(`agenixd-o${process.pid % 10000}`);
  const runtime = join(sb.root, "run/user");
  mkdirSync(runtime, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", "mode=0700,size=4m", "tmpfs", runtime]);
  chownSync(runtime, user.uid, user.gid);
  chmodSync(sb.root, 0o755);
  chmodSync(join(sb.root, "run"), 0o755);
  chmodSync(sb.store, 0o755);
  chownSync(sb.hostKey.privatePath, user.uid, user.gid);
  chmodSync(join(sb.root, "etc/ssh"), 0o755);
  // A systemctl that records how it was called, where the user can write.
  const systemctl = join(sb.root, "systemctl");
  writeFileSync(systemctl, '#!/bin/sh\necho "$@" >> "$XDG_RUNTIME_DIR/systemctl.log"\n', { mode: 0o755 });
  t.after(() => {
    spawnSync("umount", ["-l", runtime]);
    sb.cleanup();
    user.remove();
    other.remove();
  });
  const manifest = (secrets: { name: string; plaintext?: string; file?: string; path?: string; restartUnits?: string[] }[], templates: { name: string; content: string; path: string }[] = []) => {
    const json = {
      version: 2,
      secretsDir: "${XDG_RUNTIME_DIR}/agenix",
      secretsMountPoint: "${XDG_RUNTIME_DIR}/agenix.d",
      identityPaths: [sb.hostKey.privatePath],
      keepGenerations: 1,
      secrets: secrets.map((s) => ({
        name: s.name, file: s.file ?? sb.encrypt(s.plaintext ?? "x"), path: s.path ?? `\${XDG_RUNTIME_DIR}/agenix/${s.name}`,
        mode: "0400", owner: String(user.uid), group: String(user.gid), symlink: true, restartUnits: s.restartUnits ?? [], reloadUnits: [],
        placeholder: `<${s.name}>`,
      })),
      templates: templates.map((tp) => ({
        name: tp.name, file: sb.storeText(tp.content), path: tp.path, mode: "0600", owner: String(user.uid), group: String(user.gid), symlink: false, restartUnits: [], reloadUnits: [],
      })),
    };
    const file = join(sb.root, `user-manifest-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(json));
    chmodSync(file, 0o644);
    for (const f of readdirSync(sb.store)) chmodSync(join(sb.store, f), 0o644);
    return file;
  };
  const run = (file: string, extra: string[] = [], cmd = "activate") => {
    const r = spawnSync(
      "setpriv",
      ["--reuid", String(user.uid), "--regid", String(user.gid), "--clear-groups", "--", NODE, ...USER_AGENIXD, cmd, "--user", "--manifest", file, ...extra],
      { encoding: "utf8", env: launchEnv({ PATH: process.env.PATH, XDG_RUNTIME_DIR: runtime, NOTIFY_SOCKET: "", AGENIXD_SYSTEMCTL: systemctl }) },
    );
    return { status: r.status, stdout: r.stdout, stderr: r.stderr, logs: parseLogs(r.stderr) };
  };
  return { sb, user, other, runtime, manifest, run };
}

test("a user's activation writes its generation into $XDG_RUNTIME_DIR, the user's alone, with no mount", (t) => {
  const { sb, user, other, runtime, manifest, run } = userSandbox("user", t);
  const home = join(sb.root, "home");
  mkdirSync(join(home, ".tabby-client/agent"), { recursive: true });
  chownSync(home, user.uid, user.gid);
  chownSync(join(home, ".tabby-client"), user.uid, user.gid);
  chownSync(join(home, ".tabby-client/agent"), user.uid, user.gid);
  const config = join(home, ".tabby-client/agent/config.toml");
  const m = manifest([{ name: "tabby-token", plaintext: "auth_0123" }], [{ name: "tabby-config", content: '[server]\ntoken = "<tabby-token>"\n', path: config }]);
  const r = run(m);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.logs.filter((l) => /^identity/.test(String(l.msg))), [], "the user's own key (0600, the user's) is no warning");
  const mountinfo = execFileSync("cat", ["/proc/self/mountinfo"], { encoding: "utf8" });
  assert.ok(!mountinfo.includes(`${runtime}/agenix.d`), "nothing is mounted for a user");
  assert.equal(readlinkSync(`${runtime}/agenix`), `${runtime}/agenix.d/1`);
  const secret = `${runtime}/agenix/tabby-token`;
  assert.equal(execFileSync("cat", [secret], { encoding: "utf8" }), "auth_0123");
  assert.equal(statSync(secret).uid, user.uid);
  assert.equal(mode(secret), 0o400);
  assert.equal(mode(`${runtime}/agenix.d`), 0o700, "the user's mount point is the user's alone");
  assert.equal(execFileSync("cat", [config], { encoding: "utf8" }), '[server]\ntoken = "auth_0123"\n');
  assert.equal(mode(config), 0o600);
  assert.equal(statSync(config).uid, user.uid);
  const peek = spawnSync("setpriv", ["--reuid", String(other.uid), "--regid", String(other.gid), "--clear-groups", "cat", secret], { encoding: "utf8" });
  assert.notEqual(peek.status, 0, "another user cannot read it");
  assert.match(peek.stderr, /Permission denied/);

  const s = run(m, ["--json"], "status");
  assert.equal(s.status, 0, s.stderr);
  assert.equal(JSON.parse(s.stdout).generation, 1);
});

test("a user's secret that fails keeps its previous value; the others change", (t) => {
  const { sb, runtime, manifest, run } = userSandbox("user-fail", t);
  assert.equal(run(manifest([{ name: "a", plaintext: "one" }, { name: "b", plaintext: "uno", restartUnits: ["b-user.service"] }])).status, 0);
  const broken = join(sb.store, "broken.age");
  writeFileSync(broken, "not an age file\n");
  chmodSync(broken, 0o644);
  const r = run(manifest([{ name: "a", file: broken }, { name: "b", plaintext: "dos", restartUnits: ["b-user.service"] }]));
  assert.equal(r.status, 1);
  const failure = r.logs.find((l) => l.msg === "secret not installed");
  assert.equal(failure?.secret, "a");
  assert.equal(failure?.keptPrevious, true);
  assert.equal(execFileSync("cat", [`${runtime}/agenix/a`], { encoding: "utf8" }), "one");
  assert.equal(execFileSync("cat", [`${runtime}/agenix/b`], { encoding: "utf8" }), "dos");
  assert.equal(execFileSync("cat", [`${runtime}/systemctl.log`], { encoding: "utf8" }), "--user --no-block try-restart -- b-user.service\n", "the changed secret's user unit is restarted in the user's manager");
});

test("--user refuses root, and a mount point off a tmpfs", (t) => {
  const { sb, user, manifest, run } = userSandbox("user-refuse", t);
  const m = manifest([{ name: "a" }]);
  const asRoot = spawnSync(process.execPath, [...AGENIXD, "activate", "--user", "--manifest", m], { encoding: "utf8", env: launchEnv({ PATH: process.env.PATH, XDG_RUNTIME_DIR: "/tmp" }) });
  assert.equal(asRoot.status, 1);
  assert.match(asRoot.stderr, /not as root/);
  // /tmp here is the machine's disk, not a tmpfs: refused before anything is written.
  const disk = join(sb.root, "disk");
  mkdirSync(disk);
  chownSync(disk, user.uid, user.gid);
  const json = JSON.parse(execFileSync("cat", [m], { encoding: "utf8" }));
  json.secretsDir = `${disk}/agenix`;
  json.secretsMountPoint = `${disk}/agenix.d`;
  json.secrets[0].path = `${disk}/agenix/a`;
  writeFileSync(m, JSON.stringify(json));
  const r = run(m);
  if (execFileSync("stat", ["-f", "-c", "%t", sb.root], { encoding: "utf8" }).trim() !== "1021994") {
    assert.equal(r.status, 1);
    assert.match(String(r.logs.find((l) => l.level === "fatal")?.cause), /not a tmpfs or ramfs/);
  } else {
    assert.fail("/tmp is a tmpfs on this machine: this test needs a directory on a disk");
  }
});

test("expandRuntimeDir makes leading ${XDG_RUNTIME_DIR} and %t absolute, and nothing else", () => {
  const j = expandRuntimeDir({ secretsDir: "${XDG_RUNTIME_DIR}/agenix", secretsMountPoint: "%t/agenix.d", identityPaths: ["/home/u/.ssh/id_ed25519"], secrets: [{ path: "/x/${XDG_RUNTIME_DIR}" }] }, { XDG_RUNTIME_DIR: "/run/user/1000" }) as Record<string, unknown>;
  assert.equal(j.secretsDir, "/run/user/1000/agenix");
  assert.equal(j.secretsMountPoint, "/run/user/1000/agenix.d");
  assert.deepEqual(j.secrets, [{ path: "/x/${XDG_RUNTIME_DIR}" }]);
  assert.throws(() => expandRuntimeDir({ secretsDir: "${XDG_RUNTIME_DIR}/agenix" }, {}), /XDG_RUNTIME_DIR is not set/);
});
