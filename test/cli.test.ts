// agenixd's command line (src/cli.ts) as the unit runs it: usage errors that say what is wrong,
// --version, the refusal to run as another user than root, and a running agenixd that leaves no
// core dump and no /proc/PID/mem to a process without CAP_SYS_PTRACE.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { lockPath } from "../src/lock.js";
import { parseCommand } from "../src/cli.js";
import { AGENIXD, ENTRIES, SNAPSHOT_BLOB, type Entry, Sandbox } from "./helpers/sandbox.js";
import { launchEnv, snapshotArgs } from "../scripts/launch.js";

const packageVersion = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

/**
 * dist/ copied where any user can read it: the checkout may be in a directory only root can enter
 * (CI's clone is), and the runs as another user must fail for their own reasons, not for that.
 */
const worldReadable = (() => {
  const dir = mkdtempSync("/tmp/agenixd-dist-");
  chmodSync(dir, 0o755);
  cpSync(dirname(SNAPSHOT_BLOB), join(dir, "dist"), { recursive: true });
  const dist = join(dir, "dist");
  return { snapshot: snapshotArgs(join(dist, "agenixd.blob")), bundle: [join(dist, "agenixd.cjs")] } satisfies Record<Entry, readonly string[]>;
})();

function agenixd(entry: Entry, args: string[], wrapper: string[] = []) {
  const [command, ...rest] = [...wrapper, process.execPath, ...(wrapper.length > 0 ? worldReadable : ENTRIES)[entry], ...args];
  return spawnSync(command!, rest, { encoding: "utf8", env: { ...process.env, NOTIFY_SOCKET: "" } });
}

const USAGE_ERRORS: Array<[string[], string]> = [
  [[], "no command given (expected activate or status)"],
  [["bogus"], "unknown command bogus"],
  [["bogus", "--manifest", "/m.json"], "unknown command bogus"],
  [["activate"], "--manifest is required"],
  [["activate", "--phase", "users"], "--manifest is required"],
  [["activate", "--manifest"], "--manifest needs a value"],
  [["activate", "--manifest", ""], "--manifest must name a file"],
  [["activate", "--manifest", "/m.json", "--phase", "foo"], "invalid --phase foo (expected all or users)"],
  [["activate", "--manifest", "/m.json", "extra"], "unexpected argument extra"],
  [["activate", "--manifest", "/m.json", "--bogus"], "unknown option --bogus"],
  [["--help=yes"], "--help takes no value"],
  [["status", "extra"], "unexpected argument extra"],
  [["status", "--dry-run"], "--dry-run is an option of activate, not status"],
  [["status", "--phase", "users"], "--phase is an option of activate, not status"],
  [["activate", "--manifest", "/m.json", "--json"], "--json is an option of status, not activate"],
];

test("parseCommand says what is wrong with a command line", () => {
  for (const [argv, error] of USAGE_ERRORS) assert.deepEqual(parseCommand(argv), { kind: "usage", error }, argv.join(" "));
  assert.deepEqual(parseCommand(["activate", "--manifest", "/m.json"]), { kind: "activate", manifest: "/m.json", phase: "all", dryRun: false, dryActivation: false });
  assert.deepEqual(parseCommand(["activate", "--phase=users", "--manifest=/m.json"]), { kind: "activate", manifest: "/m.json", phase: "users", dryRun: false, dryActivation: false });
  assert.deepEqual(parseCommand(["activate", "--manifest", "/m.json", "--dry-run"]), { kind: "activate", manifest: "/m.json", phase: "all", dryRun: true, dryActivation: false });
  // switch-to-configuration's dry activation: nothing is written, whoever runs agenixd then.
  assert.deepEqual(parseCommand(["activate", "--manifest", "/m.json"], { NIXOS_ACTION: "dry-activate" }), { kind: "activate", manifest: "/m.json", phase: "all", dryRun: true, dryActivation: true });
  assert.deepEqual(parseCommand(["activate", "--user", "--manifest", "/m.json"], { NIXOS_ACTION: "dry-activate" }), { kind: "activate", manifest: "/m.json", phase: "all", dryRun: true, dryActivation: false, user: true }, "a user's run has no switch-to-configuration lists");
  assert.deepEqual(parseCommand(["activate", "--manifest", "/m.json"], { NIXOS_ACTION: "switch" }), { kind: "activate", manifest: "/m.json", phase: "all", dryRun: false, dryActivation: false });
  assert.deepEqual(parseCommand(["status"]), { kind: "status", json: false });
  assert.deepEqual(parseCommand(["status", "--json", "--manifest", "/m.json"]), { kind: "status", manifest: "/m.json", json: true });
  assert.deepEqual(parseCommand(["--version"]), { kind: "version" });
  assert.deepEqual(parseCommand(["activate", "--help"]), { kind: "help" });
});

for (const entry of Object.keys(ENTRIES) as Entry[]) {
  test(`${entry}: a usage error names the problem on stderr, then the usage, and exits 2`, () => {
    for (const [argv, error] of [USAGE_ERRORS[1]!, USAGE_ERRORS[3]!, USAGE_ERRORS[7]!]) {
      const r = agenixd(entry, argv);
      assert.equal(r.status, 2, argv.join(" "));
      assert.equal(r.stdout, "");
      assert.ok(r.stderr.startsWith(`agenixd: ${error}\nusage: agenixd activate`), r.stderr);
    }
  });

  test(`${entry}: --version prints the package's version, also to another user than root`, () => {
    for (const wrapper of [[], ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]]) {
      const r = agenixd(entry, ["--version"], wrapper);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `agenixd ${packageVersion}\n`);
    }
  });
}

test("another user than root is refused before anything is read or made, even where it could make it", (t) => {
  const sb = new Sandbox("cli-not-root");
  t.after(() => sb.cleanup());
  // Everything readable and the mount point's parent nobody's own: only the check stops it.
  for (const dir of [sb.root, sb.store, join(sb.root, "etc"), join(sb.root, "etc/ssh")]) chmodSync(dir, 0o755);
  mkdirSync(join(sb.root, "run"));
  chownSync(join(sb.root, "run"), 65534, 65534);
  const manifest = sb.manifest([{ name: "a" }]);
  chmodSync(manifest, 0o644);

  const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, ...worldReadable.snapshot, "activate", "--manifest", manifest], { encoding: "utf8" });
  assert.equal(r.status, 1);
  assert.equal(r.stderr, "agenixd must run as root (it runs as uid 65534)\n");
  assert.deepEqual(readdirSync(join(sb.root, "run")), [], "no lock file, no mount point");
});

test("a running agenixd is not dumpable and may not dump core", async (t) => {
  const sb = new Sandbox("cli-dumpable");
  t.after(() => sb.cleanup());
  assert.equal(sb.run(sb.manifest([{ name: "a" }])).status, 0); // makes the lock file

  // Hold the lock, so that the next activation waits, alive, after its start.
  const holder = spawn("python3", ["-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()", lockPath(sb.mountPoint)], { stdio: ["pipe", "pipe", "inherit"] });
  t.after(() => holder.kill("SIGKILL"));
  await once(holder.stdout!, "data");
  // The kernel lets a process open another's /proc/PID/mem if both have the same uids and gids,
  // the opener's capabilities include the other's, and the other is dumpable or the opener has
  // CAP_SYS_PTRACE. agenixd, the opener and a control process all run as root without
  // CAP_SYS_PTRACE (as the unit's CapabilityBoundingSet leaves agenixd): only dumpability differs.
  const withoutPtrace = ["setpriv", "--bounding-set=-sys_ptrace"];
  const running = spawn(withoutPtrace[0]!, [...withoutPtrace.slice(1), process.execPath, ...AGENIXD, "activate", "--manifest", sb.manifest([{ name: "a" }])], {
    stdio: ["ignore", "ignore", "pipe"],
    env: launchEnv({ ...process.env, NOTIFY_SOCKET: "" }),
  });
  t.after(() => running.kill("SIGKILL"));
  let stderr = "";
  running.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  while (!stderr.includes("waiting for another activation")) {
    assert.equal(running.exitCode, null, stderr);
    await new Promise((r) => setTimeout(r, 10));
  }
  const control = spawn(withoutPtrace[0]!, [...withoutPtrace.slice(1), "sleep", "30"]);
  t.after(() => control.kill("SIGKILL"));
  const openMem = (pid: number) =>
    spawnSync(withoutPtrace[0]!, [...withoutPtrace.slice(1), "python3", "-c", "import os, sys; os.open(sys.argv[1], os.O_RDONLY)", `/proc/${pid}/mem`], { encoding: "utf8" });

  await new Promise((r) => setTimeout(r, 50)); // setpriv has exec'd sleep
  assert.equal(openMem(control.pid!).status, 0, "a dumpable process's memory opens without CAP_SYS_PTRACE");
  const denied = openMem(running.pid!);
  assert.notEqual(denied.status, 0, "agenixd's memory opened without CAP_SYS_PTRACE: it is still dumpable");
  assert.match(denied.stderr, /PermissionError/);
  assert.match(readFileSync(`/proc/${running.pid}/limits`, "utf8"), /^Max core file size\s+0\s+0\s+bytes/m);

  holder.stdin!.end();
  const [code] = (await once(running, "exit")) as [number];
  assert.equal(code, 0, stderr);
  assert.equal(existsSync(sb.secretsDir), true);
});
