// src/ramfs.ts: the ramfs mounted with mount(2) through agenixd's addon, on the directory that was
// checked. Root, in the private mount namespace the test runner is started in.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { ensureRamfs, isRamfs } from "../src/ramfs.js";
import { loadNativeAddon } from "../src/native.js";

loadNativeAddon(new URL("../src/ramfs.js", import.meta.url));

function tmp(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync("/tmp/agenixd-ramfs-");
  chmodSync(dir, 0o755);
  t.after(() => {
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n").reverse()) {
      const at = line.split(" ")[4];
      if (at?.startsWith(`${dir}/`)) execFileSync("umount", [at]);
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function mountsAt(path: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.split(" ")[4] === path);
}

test("ensureRamfs makes the mount point 0751 and mounts one ramfs on it, nodev and nosuid; a second call mounts nothing", async (t) => {
  const mp = join(tmp(t), "parent/agenix.d");
  assert.equal(await ensureRamfs(mp), true);
  assert.ok(isRamfs(mp));
  assert.equal((statSync(mp).mode & 0o7777).toString(8), "751", "the ramfs's root has mode=0751");
  assert.equal((statSync(join(mp, "..")).mode & 0o7777).toString(8), "755", "a missing parent is made 0755");
  const [line, ...more] = mountsAt(mp);
  assert.deepEqual(more, [], "one mount");
  const fields = line!.split(" ");
  assert.ok(fields[5]!.split(",").includes("nodev") && fields[5]!.split(",").includes("nosuid"), line);
  assert.deepEqual(fields.slice(fields.indexOf("-") + 1, fields.indexOf("-") + 3), ["ramfs", "none"], line);
  assert.equal(await ensureRamfs(mp), false);
  assert.equal(mountsAt(mp).length, 1);
});

test("ensureRamfs refuses a mount point that holds files or has another filesystem on it, and mounts nothing", async (t) => {
  const dir = tmp(t);
  const full = join(dir, "full");
  mkdirSync(full, { mode: 0o751 });
  writeFileSync(join(full, "1"), "");
  await assert.rejects(ensureRamfs(full), /cannot use secretsMountPoint .*full: it is not a ramfs and holds 1, which a ramfs mounted on it would hide/);
  assert.deepEqual(mountsAt(full), []);
  const tmpfs = join(dir, "tmpfs");
  mkdirSync(tmpfs, { mode: 0o751 });
  execFileSync("mount", ["-t", "tmpfs", "none", tmpfs]);
  await assert.rejects(ensureRamfs(tmpfs), /a tmpfs filesystem is mounted there, not a ramfs/);
  assert.equal(mountsAt(tmpfs).length, 1);
});
