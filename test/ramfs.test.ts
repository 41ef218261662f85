// Finding mount(8): NixOS's unit PATH has no util-linux, so PATH alone cannot be relied on.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findMount } from "../src/ramfs.js";

function tmp(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync("/tmp/agenixd-ramfs-");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function fakeMount(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "mount");
  writeFileSync(file, "#!/bin/sh\nexit 0\n");
  chmodSync(file, 0o755);
  return file;
}

test("findMount: AGENIXD_MOUNT wins over PATH and the fallbacks; a relative one is refused", (t) => {
  const dir = tmp(t);
  const onPath = fakeMount(join(dir, "path"));
  assert.equal(findMount({ AGENIXD_MOUNT: "/nix/store/x-util-linux/bin/mount", PATH: join(dir, "path") }, [onPath]), "/nix/store/x-util-linux/bin/mount");
  assert.throws(() => findMount({ AGENIXD_MOUNT: "mount" }, []), /AGENIXD_MOUNT must be an absolute path to mount\(8\), got "mount"/);
});

test("findMount: the first executable mount on PATH, skipping relative entries, non-executables and directories", (t) => {
  const dir = tmp(t);
  writeFileSync(join(dir, "mount"), "not executable", { mode: 0o644 }); // in "." (relative: ignored) and not executable
  mkdirSync(join(dir, "dir/mount"), { recursive: true }); // a directory called mount
  const wanted = fakeMount(join(dir, "bin"));
  assert.equal(findMount({ PATH: `.:${dir}:${join(dir, "dir")}:${join(dir, "bin")}/` }, []), wanted);
});

test("findMount: without AGENIXD_MOUNT or a mount on PATH, the fallbacks in order; none: an error listing where it looked", (t) => {
  const dir = tmp(t);
  const second = fakeMount(join(dir, "second"));
  assert.equal(findMount({ PATH: "/nonexistent" }, [join(dir, "first/mount"), second]), second);
  assert.throws(
    () => findMount({ PATH: "/nonexistent:/also-not" }, [join(dir, "a/mount"), join(dir, "b/mount")]),
    (e: Error) =>
      e.message === `cannot find mount(8): AGENIXD_MOUNT is not set, no executable mount in PATH (/nonexistent:/also-not), nor at ${join(dir, "a/mount")}, ${join(dir, "b/mount")}`,
  );
  assert.throws(() => findMount({}, []), /no executable mount in PATH \(unset\)/);
});
