// sd_notify: STATUS= updates while working and READY=1 after the swap, received on a real
// unix datagram socket (as systemd's NOTIFY_SOCKET is), with the sender's credentials, by which
// systemd decides whose message it is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { AGENIXD, ENTRIES, type Entry, SNAPSHOT_BLOB, Sandbox } from "./helpers/sandbox.js";
import { SNAPSHOT_NODE_FLAGS } from "../scripts/launch.js";
import { installLauncher, makeBlobOfAnotherNodeRelease } from "./helpers/launcher.js";


// Each datagram as "PID MESSAGE", PID from SCM_CREDENTIALS (systemd sets SO_PASSCRED too). A
// BARRIER=1 carries a pipe's write end (sd_notify_barrier(3)), which the receiver closes, as
// systemd does, after argv[3] ms; it writes "closed <time>" then. It stops at READY=1, or with
// argv[4] = "barrier" at the BARRIER=1 after it.
const RECEIVER = `
import socket, struct, sys, os, time, array
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind("\\0" + sys.argv[1][1:] if sys.argv[1].startswith("@") else sys.argv[1])
print("bound", flush=True)
s.settimeout(20)
out = open(sys.argv[2], "w")
delay = int(sys.argv[3]) / 1000
until_barrier = sys.argv[4] == "barrier"
ready = False
while True:
    data, ancillary, _, _ = s.recvmsg(8192, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4 * 4))
    pid = [struct.unpack("iII", d)[0] for level, kind, d in ancillary if kind == socket.SCM_CREDENTIALS][0]
    fds = [fd for level, kind, d in ancillary if kind == socket.SCM_RIGHTS for fd in array.array("i", d)]
    data = data.decode()
    out.write(str(pid) + " " + data.replace("\\n", "|") + "\\n"); out.flush()
    if fds:
        time.sleep(delay)
        for fd in fds: os.close(fd)
        out.write("closed %f\\n" % (time.time() * 1000)); out.flush()
    ready = ready or "READY=1" in data
    if ready and (not until_barrier or "BARRIER=1" in data):
        break
`;

interface Notified {
  status: number | null;
  /** The datagrams' texts. */
  messages: string[];
  /** The sender's pid of each, as systemd sees it. */
  senders: number[];
  pid: number;
  /** When the receiver closed each barrier's pipe, and when agenixd exited (ms since the epoch). */
  barriersClosedAt: number[];
  exitedAt: number;
}

/** Runs one activation with a real NOTIFY_SOCKET; returns its exit status and the datagrams received. */
async function activateNotified(
  sb: Sandbox,
  manifest: string,
  args: string[] = [],
  entry: readonly string[] = AGENIXD,
  env: Record<string, string> = {},
  command: readonly string[] = [process.execPath, ...entry],
  receiver: { barrierDelayMs?: number; untilBarrier?: boolean } = {},
): Promise<Notified> {
  const socketPath = join(sb.root, "notify.sock");
  const received = join(sb.root, "received.txt");
  const receiverArgs = [String(receiver.barrierDelayMs ?? 0), receiver.untilBarrier ? "barrier" : "ready"];
  const receiving = spawn("python3", ["-c", RECEIVER, socketPath, received, ...receiverArgs], { stdio: ["ignore", "pipe", "inherit"] });
  await once(receiving.stdout, "data");
  const child = spawn(command[0]!, [...command.slice(1), "activate", "--manifest", manifest, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, NOTIFY_SOCKET: socketPath, ...env },
  });
  child.stderr!.resume(); // agenixd's logs are not what this file tests
  let exitedAt = 0;
  const exited = once(child, "exit").then((r) => ((exitedAt = Date.now()), r));
  const [[status], [code]] = (await Promise.all([exited, once(receiving, "exit")])) as [[number | null], [number]];
  assert.equal(code, 0, "receiver saw READY=1");
  rmSync(socketPath);
  const all = readFileSync(received, "utf8").trim().split("\n");
  const lines = all.filter((l) => !l.startsWith("closed "));
  return {
    barriersClosedAt: all.filter((l) => l.startsWith("closed ")).map((l) => Number(l.slice("closed ".length))),
    exitedAt,
    status,
    messages: lines.map((l) => l.slice(l.indexOf(" ") + 1)),
    senders: lines.map((l) => Number(l.slice(0, l.indexOf(" ")))),
    pid: child.pid!,
  };
}

test("sends STATUS= while working and READY=1 once the new generation is live", async (t) => {
  const sb = new Sandbox("notify");
  t.after(() => sb.cleanup());
  const { status, messages } = await activateNotified(sb, sb.manifest([{ name: "a" }, { name: "b" }]));
  assert.equal(status, 0);
  const statuses = messages.filter((m) => m.startsWith("STATUS="));
  assert.ok(statuses.some((s) => s.includes("decrypting 2 secrets")), messages.join("\n"));
  assert.ok(statuses.some((s) => s.includes("generation 1: 2 secrets installed")), messages.join("\n"));
  const readyIndex = messages.findIndex((m) => m.includes("READY=1"));
  const swapIndex = messages.findIndex((m) => m.includes("switching"));
  assert.ok(swapIndex >= 0 && readyIndex > swapIndex, "READY=1 comes after the swap");
  assert.ok(existsSync(sb.secretsDir));
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/1`);
});

test("READY=1 also when there is nothing to do (users phase) and when every secret failed", async (t) => {
  const sb = new Sandbox("notify-noop");
  t.after(() => sb.cleanup());
  const idle = await activateNotified(sb, sb.manifest([{ name: "a" }]), ["--phase", "users"]);
  assert.equal(idle.status, 0);
  assert.ok(idle.messages.some((m) => m.includes("no secret is needed for users")));
  assert.equal(sb.run(sb.manifest([{ name: "a" }])).status, 0);
  const failed = await activateNotified(sb, sb.manifest([{ name: "a", file: "/nonexistent.age" }]));
  assert.equal(failed.status, 1, "the unit still fails");
  assert.ok(failed.messages.some((m) => m.includes("generation 1 kept")));
});

for (const entry of Object.keys(ENTRIES) as Entry[]) {
  test(`the ${entry} entry finds its addon and reports READY=1, as itself`, async (t) => {
    const sb = new Sandbox(`notify-${entry}`);
    t.after(() => sb.cleanup());
    const { status, messages, senders, pid } = await activateNotified(sb, sb.manifest([{ name: "a" }]), [], ENTRIES[entry]);
    assert.equal(status, 0);
    assert.ok(messages.some((m) => m.includes("READY=1")), messages.join("\n"));
    assert.deepEqual(new Set(senders), new Set([pid]));
  });
}

test("with AGENIXD_MAIN_PID (the launcher's), every message is sent on that process's behalf", async (t) => {
  const sb = new Sandbox("notify-main-pid");
  t.after(() => sb.cleanup());
  const main = spawn("sleep", ["30"]); // stands for the launcher, the unit's main process
  t.after(() => main.kill("SIGKILL"));
  const { status, messages, senders } = await activateNotified(sb, sb.manifest([{ name: "a" }]), [], AGENIXD, { AGENIXD_MAIN_PID: String(main.pid) });
  assert.equal(status, 0);
  assert.ok(messages.length >= 3 && messages.at(-1) === "READY=1|", messages.join("\n"));
  assert.deepEqual(senders, messages.map(() => main.pid));
});

test("without CAP_SYS_ADMIN to speak for AGENIXD_MAIN_PID, messages go out as agenixd's own, each followed by a barrier it waits for", async (t) => {
  const sb = new Sandbox("notify-no-sys-admin");
  t.after(() => sb.cleanup());
  const main = spawn("sleep", ["30"]);
  t.after(() => main.kill("SIGKILL"));
  // The users phase with no secret for users mounts nothing: it runs without CAP_SYS_ADMIN.
  const command = ["setpriv", "--bounding-set=-sys_admin", process.execPath, ...AGENIXD];
  const { status, messages, senders, pid, barriersClosedAt, exitedAt } = await activateNotified(
    sb, sb.manifest([{ name: "a" }]), ["--phase", "users"], AGENIXD, { AGENIXD_MAIN_PID: String(main.pid) }, command,
    { barrierDelayMs: 300, untilBarrier: true },
  );
  assert.equal(status, 0);
  assert.deepEqual(senders, messages.map(() => pid), "sent as agenixd itself (setpriv exec'd node)");
  // systemd finds a sender's unit by its pid: agenixd must not exit before systemd read READY=1.
  const states = messages.filter((m) => m !== "BARRIER=1|");
  assert.equal(states.at(-1), "READY=1|");
  assert.deepEqual(messages, states.flatMap((m) => [m, "BARRIER=1|"]), "a barrier after every message");
  assert.equal(barriersClosedAt.length, states.length);
  assert.ok(exitedAt >= barriersClosedAt.at(-1)!, `agenixd exited at ${exitedAt}, before systemd closed READY=1's barrier at ${barriersClosedAt.at(-1)}`);
});

for (const fallback of [false, true]) {
  test(`under the launcher${fallback ? ", falling back to the plain bundle," : ""} every message is the launcher's, the unit's main process`, async (t) => {
    const dir = mkdtempSync("/tmp/agenixd-notify-launcher-");
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // For the fallback, a blob node refuses.
    const launcher = installLauncher(dir, {}, fallback ? (dist) => makeBlobOfAnotherNodeRelease(join(dist, "agenixd.blob")) : undefined);
    const sb = new Sandbox("notify-launcher");
    t.after(() => sb.cleanup());
    const { status, messages, senders, pid } = await activateNotified(sb, sb.manifest([{ name: "a" }]), [], [], {}, [launcher]);
    assert.equal(status, 0);
    assert.equal(messages.at(-1), "READY=1|");
    assert.deepEqual(senders, messages.map(() => pid), "systemd would take each for the main process's (NotifyAccess=main)");
  });
}

test("an abstract NOTIFY_SOCKET (@name) is reached too", async (t) => {
  const sb = new Sandbox("notify-abstract");
  t.after(() => sb.cleanup());
  const received = join(sb.root, "received.txt");
  const address = `@agenixd-test-${process.pid}`;
  const receiver = spawn("python3", ["-c", RECEIVER, address, received, "0", "ready"], { stdio: ["ignore", "pipe", "inherit"] });
  await once(receiver.stdout, "data");
  const r = spawnSync(process.execPath, [...AGENIXD, "activate", "--manifest", sb.manifest([{ name: "a" }])], { encoding: "utf8", env: { ...process.env, NOTIFY_SOCKET: address } });
  assert.equal(r.status, 0, r.stderr);
  const [code] = (await once(receiver, "exit")) as [number];
  assert.equal(code, 0, "receiver saw READY=1");
  assert.match(readFileSync(received, "utf8"), /READY=1/);
});

test("a STATUS= naming many failed secrets stays under systemd's 4096 bytes", async (t) => {
  const sb = new Sandbox("notify-long-status");
  t.after(() => sb.cleanup());
  assert.equal(sb.run(sb.manifest([{ name: "ok" }])).status, 0);
  const failing = Array.from({ length: 300 }, (_, i) => ({ name: `a-rather-long-secret-name-${i}`, file: "/nonexistent.age" }));
  const { status, messages } = await activateNotified(sb, sb.manifest([{ name: "ok" }, ...failing]));
  assert.equal(status, 1);
  const summary = messages.find((m) => m.includes("300 failed"));
  assert.ok(summary, messages.join("\n"));
  assert.ok(Buffer.byteLength(summary) <= 1100 && summary.endsWith("…|"), summary);
});

test("the snapshot finds the addon also when its blob is named relatively, as --snapshot-blob=PATH", async (t) => {
  const sb = new Sandbox("notify-relative-blob");
  t.after(() => sb.cleanup());
  const blob = relative(process.cwd(), SNAPSHOT_BLOB);
  assert.ok(!blob.startsWith("/"));
  const { status, messages } = await activateNotified(sb, sb.manifest([{ name: "a" }]), [], [...SNAPSHOT_NODE_FLAGS, `--snapshot-blob=${blob}`, "--"]);
  assert.equal(status, 0);
  assert.ok(messages.some((m) => m.includes("READY=1")), messages.join("\n"));
});
