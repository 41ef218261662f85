// bin/agenixd (scripts/agenixd-launcher.sh, rendered by scripts/launch.ts as by nix/package.nix):
// - it falls back to the plain bundle when node refuses the snapshot (a corrupt or truncated blob,
//   one of another Node release), with the reason in the log, and only then: a failed secret or a crash after
//   agenixd began is not run a second time, a normal start never falls back;
// - its glibc tunables take effect: glibc ignores a misspelt or unsupported tunable without a
//   word, so this counts the page faults of a snapshot start with and without them.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { GLIBC_TUNABLES, launchEnv, renderLauncher, snapshotArgs, SNAPSHOT_NODE_FLAGS, type LauncherValues } from "../scripts/launch.js";
import { lockPath } from "../src/lock.js";
import { installLauncher, makeBlobOfAnotherNodeRelease } from "./helpers/launcher.js";
import { parseLogs, Sandbox, SNAPSHOT_BLOB } from "./helpers/sandbox.js";

const FALLBACK = /agenixd: node did not start the snapshot .*agenixd\.blob \(exit status (\d+), node's message if any above\); activating with .*agenixd\.cjs instead/;

/** installLauncher in a directory of its own, removed after the test. */
function installed(t: TestContext, options: Partial<LauncherValues> = {}, change?: (dist: string) => void): string {
  const dir = mkdtempSync("/tmp/agenixd-launcher-");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return installLauncher(dir, options, change);
}

function activate(launcher: string, manifest: string) {
  const r = spawnSync(launcher, ["activate", "--manifest", manifest], { encoding: "utf8", env: { ...process.env, NOTIFY_SOCKET: "" }, timeout: 60_000 });
  return { ...r, logs: parseLogs(r.stderr) };
}

/** Replaces `length` bytes at `offset` of a file with their complement. */
function flipBytes(file: string, offset: number, length: number): void {
  const bytes = readFileSync(file);
  for (let i = offset; i < offset + length; i++) bytes[i] = bytes[i]! ^ 0xff;
  writeFileSync(file, bytes);
}

test("a normal start runs the snapshot and does not fall back", (t) => {
  // Without the plain bundle a fallback could not succeed.
  const launcher = installed(t, {}, (dist) => {
    for (const f of ["agenixd.cjs", "sshpk.cjs"]) rmSync(join(dist, f));
  });
  const sb = new Sandbox("launcher-normal");
  t.after(() => sb.cleanup());
  const r = activate(launcher, sb.manifest([{ name: "a", plaintext: "from the snapshot" }]));
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, FALLBACK);
  assert.equal(sb.read("a"), "from the snapshot");
});

const REFUSED: Array<[string, Partial<LauncherValues>, (dist: string) => void, RegExp]> = [
  ["a truncated blob", {}, (dist) => writeFileSync(join(dist, "agenixd.blob"), readFileSync(join(dist, "agenixd.blob")).subarray(0, 1_000_000)), /^(133|134|139)$/],
  ["a blob with a corrupt header", {}, (dist) => flipBytes(join(dist, "agenixd.blob"), 0, 64), /^(133|134|139)$/],
  ["an empty blob", {}, (dist) => writeFileSync(join(dist, "agenixd.blob"), ""), /^(133|134|139)$/],
  ["a missing blob", {}, (dist) => rmSync(join(dist, "agenixd.blob")), /^14$/],
  ["a blob of another Node release", {}, (dist) => makeBlobOfAnotherNodeRelease(join(dist, "agenixd.blob")), /^14$/],
];

for (const [what, options, change, status] of REFUSED) {
  test(`${what}: the launcher says why and activates with the plain bundle`, (t) => {
    const launcher = installed(t, options, change);
    const sb = new Sandbox("launcher-fallback");
    t.after(() => sb.cleanup());
    const r = activate(launcher, sb.manifest([{ name: "a", plaintext: "from the bundle" }]));
    assert.equal(r.status, 0, r.stderr);
    const reason = FALLBACK.exec(r.stderr);
    assert.ok(reason, r.stderr);
    assert.match(reason[1]!, status);
    assert.equal(sb.read("a"), "from the bundle");
    assert.equal(r.logs.filter((l) => l.msg === "generation 1 is active").length, 1);
  });
}

test("a failed secret (exit 1) is final: the plain bundle does not run it again", (t) => {
  const launcher = installed(t);
  const sb = new Sandbox("launcher-failed-secret");
  t.after(() => sb.cleanup());
  const r = activate(launcher, sb.manifest([{ name: "ok" }, { name: "missing", file: "/nonexistent.age" }]));
  assert.equal(r.status, 1);
  assert.doesNotMatch(r.stderr, FALLBACK);
  assert.equal(r.logs.filter((l) => l.msg === "secret not installed").length, 1, "one activation, one failure");
});

/** Every descendant of a process, from /proc/PID/stat's parent pids. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {} // exited meanwhile
  }
  const found: number[] = [];
  for (let frontier = [pid]; frontier.length > 0; ) {
    frontier = [...parents].filter(([, parent]) => frontier.includes(parent)).map(([child]) => child);
    found.push(...frontier);
  }
  return found;
}

test("a crash after agenixd began (SIGABRT, exit 134) is final: no fallback", async (t) => {
  const launcher = installed(t);
  const sb = new Sandbox("launcher-crash");
  t.after(() => sb.cleanup());
  assert.equal(activate(launcher, sb.manifest([{ name: "a" }])).status, 0); // makes the lock file
  // agenixd waits for this lock: alive, past its start, when it is killed.
  const holder = spawn("python3", ["-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()", lockPath(sb.mountPoint)], { stdio: ["pipe", "pipe", "inherit"] });
  t.after(() => holder.kill("SIGKILL"));
  await once(holder.stdout!, "data");

  const child = spawn(launcher, ["activate", "--manifest", sb.manifest([{ name: "a" }])], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, NOTIFY_SOCKET: "" } });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  while (!stderr.includes("waiting for another activation")) {
    assert.equal(child.exitCode, null, stderr);
    await new Promise((r) => setTimeout(r, 10));
  }
  // By its executable: Node 24 names its main thread MainThread.
  const nodeExe = realpathSync(process.execPath);
  const node = descendants(child.pid!).filter((pid) => readlinkSync(`/proc/${pid}/exe`) === nodeExe);
  assert.equal(node.length, 1, `one node below the launcher: ${node}`);
  process.kill(node[0]!, "SIGABRT");
  const [code] = (await once(child, "exit")) as [number];
  assert.equal(code, 134, stderr);
  assert.doesNotMatch(stderr, FALLBACK);
  holder.kill("SIGKILL");
});

test("renderLauncher fills in every value and refuses one that would break its quoting", () => {
  const script = renderLauncher({ shell: "/bin/sh", node: "/n/bin/node", dist: "/n/dist" });
  assert.ok(script.startsWith("#!/bin/sh\n"));
  assert.doesNotMatch(script, /@[A-Za-z]+@/);
  assert.match(script, new RegExp(`"\\$node" ${SNAPSHOT_NODE_FLAGS.join(" ")} --snapshot-blob "\\$dist/agenixd.blob" -- "\\$@"`));
  assert.ok(script.includes(`GLIBC_TUNABLES='${GLIBC_TUNABLES}'`));
  assert.throws(() => renderLauncher({ shell: "/bin/sh", node: "/n/bin/node", dist: "/it's" }), /dist may not hold a quote/);
  assert.throws(() => renderLauncher({ shell: "/bin/sh", node: "/n", dist: "/d", snapshotNodeFlags: ["--x; rm"] }), /unexpected V8 flag/);
});

// wait4() gives the child's rusage; node's child_process does not.
const MINOR_FAULTS = String.raw`
import json, os, sys
argv, env = json.loads(sys.argv[1]), json.loads(sys.argv[2])
pid = os.posix_spawn(argv[0], argv, env, file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"status": os.waitstatus_to_exitcode(status), "minflt": usage.ru_minflt}))
`;

function fewestMinorFaults(env: Record<string, string>): number {
  let fewest = Infinity;
  for (let i = 0; i < 3; i++) {
    const out = execFileSync("python3", ["-c", MINOR_FAULTS, JSON.stringify([process.execPath, ...snapshotArgs(SNAPSHOT_BLOB), "--help"]), JSON.stringify(env)], { encoding: "utf8" });
    const { status, minflt } = JSON.parse(out) as { status: number; minflt: number };
    assert.equal(status, 0);
    fewest = Math.min(fewest, minflt);
  }
  return fewest;
}

test("launchEnv puts the package's tunables in front of the caller's, as makeBinaryWrapper --prefix does", () => {
  assert.equal(launchEnv({ PATH: "/bin" }).GLIBC_TUNABLES, GLIBC_TUNABLES);
  assert.equal(launchEnv({ GLIBC_TUNABLES: "glibc.malloc.arena_max=1" }).GLIBC_TUNABLES, `${GLIBC_TUNABLES}:glibc.malloc.arena_max=1`);
  assert.deepEqual(Object.keys(launchEnv({ A: "1", B: undefined })).sort(), ["A", "GLIBC_TUNABLES"]);
});

test("the snapshot starts with a third fewer page faults under the package's glibc tunables", (t) => {
  const thp = readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8");
  if (thp.includes("[never]")) {
    t.skip(`transparent huge pages are off on this machine (${thp.trim()}), so hugetlb=1 cannot act`);
    return;
  }
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
  const plain = fewestMinorFaults(env);
  const tuned = fewestMinorFaults(launchEnv(env));
  // About 5,500 against 2,500 on the development VM.
  assert.ok(tuned < plain * 0.67, `minor faults: ${tuned} with ${GLIBC_TUNABLES}, ${plain} without`);
});
