// The activation lock (src/lock.ts): flock(2) on a root-only file beside the mount point. Another
// user can neither take nor block it; root activations wait for each other; a killed holder's
// lock is released by the kernel; a lock file agenixd did not make is refused, never followed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { acquireLock, lockPath } from "../src/lock.js";
import { loadNativeAddon } from "../src/native.js";
import { ENTRIES, Sandbox } from "./helpers/sandbox.js";

// /usr/bin/python3: the PATH one may be a shim under /root, which nobody cannot reach.
const NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];

/** Runs as `nobody`: every way to the lock that user has. Prints what each did, then holds until stdin closes. */
const NOBODY_TRIES = String.raw`
import errno, fcntl, json, os, socket, sys
mount_point, lock = sys.argv[1], sys.argv[2]
out = {}
# agenixd's old lock: an abstract unix socket name anyone could bind (node's libuv pads it with
# NULs to the whole sun_path).
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(("\0agenixd:" + os.readlink("/proc/self/ns/mnt") + ":" + mount_point).encode().ljust(108, b"\0"))
s.listen()
out["abstract socket"] = "bound"
def attempt(name, f):
    try:
        f()
        out[name] = "done"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
held = []
def open_and_lock(flags):
    fd = os.open(lock, flags | os.O_NOFOLLOW, 0o666)
    held.append(fd)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
attempt("open", lambda: open_and_lock(os.O_RDONLY))
attempt("create", lambda: open_and_lock(os.O_RDWR | os.O_CREAT))
attempt("symlink", lambda: os.symlink("/tmp", lock + ".planted"))
attempt("rename", lambda: os.rename(lock, lock + ".moved"))
print(json.dumps(out), flush=True)
sys.stdin.read()
`;

/** A sandbox whose directories others may traverse, as /run: only the files themselves are root's. */
function openSandbox(label: string): Sandbox {
  const sb = new Sandbox(label);
  chmodSync(sb.root, 0o755);
  mkdirSync(join(sb.root, "run"), { mode: 0o755 });
  chmodSync(join(sb.root, "run"), 0o755);
  return sb;
}

async function startNobody(sb: Sandbox): Promise<{ child: ChildProcess; tries: Record<string, string> }> {
  const child = spawn(NOBODY[0]!, [...NOBODY.slice(1), "/usr/bin/python3", "-c", NOBODY_TRIES, sb.mountPoint, lockPath(sb.mountPoint)], { stdio: ["pipe", "pipe", "inherit"] });
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  return { child, tries: JSON.parse(line.toString()) as Record<string, string> };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGKILL");
  await once(child, "exit");
}

/** Resolves when `pattern` appears in the child's stderr; returns everything read so far. */
function stderrUntil(child: ChildProcess, pattern: RegExp): Promise<string> {
  let seen = "";
  return new Promise((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      seen += d.toString();
      if (pattern.test(seen)) resolve(seen);
    });
    child.once("exit", (code) => reject(new Error(`exited (${code}) before ${pattern}:\n${seen}`)));
  });
}

/** pids holding a flock on `file`, from /proc/locks. */
function flockHolders(file: string): number[] {
  const ino = statSync(file).ino;
  return readFileSync("/proc/locks", "utf8")
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === "FLOCK" && f[5]?.endsWith(`:${ino}`))
    .map((f) => Number(f[4]));
}

/**
 * Starts an activation of `count` secrets and stops it (SIGSTOP) while it holds the lock: a real
 * agenixd, frozen mid-activation with the lock in hand.
 */
async function stoppedHolder(sb: Sandbox, count: number): Promise<ChildProcess> {
  const file = sb.encrypt("slow");
  const holder = sb.start(sb.manifest(Array.from({ length: count }, (_, i) => ({ name: `s${i}`, file }))));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (existsSync(lockPath(sb.mountPoint)) && flockHolders(lockPath(sb.mountPoint)).includes(holder.pid!)) break;
    assert.equal(holder.exitCode, null, "the holder finished before it was seen holding the lock");
    assert.ok(Date.now() < deadline, "the holder never took the lock");
    await new Promise((r) => setTimeout(r, 2));
  }
  holder.kill("SIGSTOP");
  return holder;
}

test("another user can neither take nor block the lock (the old abstract socket name is bound by nobody)", async (t) => {
  const sb = openSandbox("lock-nobody");
  t.after(() => sb.cleanup());

  // Before the first activation there is no lock file: nobody may not create one.
  const before = await startNobody(sb);
  t.after(() => stop(before.child));
  assert.equal(before.tries["abstract socket"], "bound");
  assert.equal(before.tries.create, "EACCES", JSON.stringify(before.tries));
  assert.equal(existsSync(lockPath(sb.mountPoint)), false);
  const first = spawnSync(process.execPath, [...ENTRIES.snapshot, "activate", "--manifest", sb.manifest([{ name: "a", plaintext: "one" }])], { encoding: "utf8", timeout: 20_000 });
  assert.equal(first.status, 0, first.stderr);
  assert.doesNotMatch(first.stderr, /waiting for another activation/);
  await stop(before.child);

  const lock = statSync(lockPath(sb.mountPoint));
  assert.equal(lock.uid, 0);
  assert.equal(lock.mode & 0o777, 0o600);

  // The lock file exists now: nobody can neither open it nor move it.
  const after = await startNobody(sb);
  t.after(() => stop(after.child));
  assert.deepEqual(after.tries, { "abstract socket": "bound", open: "EACCES", create: "EACCES", symlink: "EACCES", rename: "EACCES" });
  const started = Date.now();
  const second = spawnSync(process.execPath, [...ENTRIES.snapshot, "activate", "--manifest", sb.manifest([{ name: "a", plaintext: "two" }])], { encoding: "utf8", timeout: 20_000 });
  assert.equal(second.status, 0, second.stderr);
  assert.doesNotMatch(second.stderr, /waiting for another activation/);
  assert.ok(Date.now() - started < 10_000);
  assert.equal(sb.read("a"), "two");
});

test("a second root activation waits for the first, then runs", async (t) => {
  const sb = new Sandbox("lock-wait");
  t.after(() => sb.cleanup());
  const first = await stoppedHolder(sb, 300);
  t.after(() => stop(first));
  const second = sb.start(sb.manifest([{ name: "later", plaintext: "second" }]));
  t.after(() => stop(second));
  await stderrUntil(second, /waiting for another activation to finish/);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(second.exitCode, null, "the second activation went on while the first held the lock");

  first.kill("SIGCONT");
  const [firstCode] = (await once(first, "exit")) as [number];
  const [secondCode] = (await once(second, "exit")) as [number];
  assert.equal(firstCode, 0);
  assert.equal(secondCode, 0);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/2`, "the second activation made generation 2, after the first");
  assert.equal(sb.read("later"), "second");
});

test("SIGKILL of the agenixd holding the lock releases it: the waiting activation completes", async (t) => {
  const sb = new Sandbox("lock-kill");
  t.after(() => sb.cleanup());
  const holder = await stoppedHolder(sb, 300);
  t.after(() => stop(holder));
  const waiter = sb.start(sb.manifest([{ name: "after-kill", plaintext: "survived" }]));
  t.after(() => stop(waiter));
  await stderrUntil(waiter, /waiting for another activation to finish/);

  holder.kill("SIGKILL");
  const [code] = (await once(waiter, "exit")) as [number];
  assert.equal(code, 0);
  assert.equal(sb.read("after-kill"), "survived");
});

for (const planted of ["a symbolic link", "a user's file", "a file others can read", "a directory", "a FIFO"] as const) {
  test(`a lock file that is ${planted} is refused, and nothing is activated`, (t) => {
    const sb = new Sandbox("lock-planted");
    t.after(() => sb.cleanup());
    mkdirSync(join(sb.root, "run"));
    const lock = lockPath(sb.mountPoint);
    const target = join(sb.root, "target");
    let expected: RegExp;
    if (planted === "a symbolic link") {
      symlinkSync(target, lock);
      expected = /is a symbolic link/;
    } else if (planted === "a user's file") {
      writeFileSync(lock, "", { mode: 0o600 });
      chownSync(lock, 65534, 65534);
      expected = /belongs to uid 65534/;
    } else if (planted === "a file others can read") {
      writeFileSync(lock, "", { mode: 0o644 });
      chmodSync(lock, 0o644);
      expected = /is open to other users \(mode 0644/;
    } else if (planted === "a directory") {
      mkdirSync(lock);
      expected = /is a directory/;
    } else {
      assert.equal(spawnSync("mkfifo", ["-m", "0600", lock]).status, 0);
      expected = /is not a regular file/;
    }
    const r = spawnSync(process.execPath, [...ENTRIES.snapshot, "activate", "--manifest", sb.manifest([{ name: "a" }])], { encoding: "utf8", timeout: 20_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`lock file ${lock.replace(/[.]/g, "\\.")} ${expected.source}.*agenixd refuses it`));
    assert.equal(existsSync(target), false, "the symlink's target was not created");
    assert.equal(existsSync(sb.mountPoint), false, "nothing was mounted or written");
  });
}

test("acquireLock: a timeout names the holder; missing parents are made 0755", async (t) => {
  const dir = mkdtempSync("/tmp/agenixd-lock-unit-");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  loadNativeAddon(pathToFileURL(ENTRIES.bundle[0]));
  const mountPoint = join(dir, "a/b/agenix.d");
  const lock = await acquireLock(mountPoint);
  for (const d of ["a", "a/b"]) assert.equal(statSync(join(dir, d)).mode & 0o777, 0o755, d);
  await lock.release();

  const holder = spawn("python3", ["-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()", lockPath(mountPoint)], { stdio: ["pipe", "pipe", "inherit"] });
  t.after(() => stop(holder));
  await once(holder.stdout!, "data");
  let waited = 0;
  await assert.rejects(acquireLock(mountPoint, { timeoutMs: 1000, onWait: () => waited++ }), new RegExp(`the lock .* is still held after 1 s, held by pid ${holder.pid} \\(python3\\)`));
  assert.equal(waited, 1, "onWait is called once");
  holder.stdin!.end();
  await once(holder, "exit");
  await (await acquireLock(mountPoint, { timeoutMs: 1000 })).release();
});
