// sd_notify: STATUS= updates while working and READY=1 after the swap, received on a real
// unix datagram socket (as systemd's NOTIFY_SOCKET is).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { AGENIXD, ENTRIES, type Entry, SNAPSHOT_BLOB, Sandbox } from "./helpers/sandbox.js";
import { SNAPSHOT_NODE_FLAGS } from "../scripts/launch.js";

const RECEIVER = `
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
s.settimeout(20)
out = open(sys.argv[2], "w")
while True:
    data = s.recv(4096).decode()
    out.write(data.replace("\\n", "|") + "\\n"); out.flush()
    if "READY=1" in data:
        break
`;

/** Runs one activation with a real NOTIFY_SOCKET; returns its exit status and the datagrams received. */
async function activateNotified(sb: Sandbox, manifest: string, args: string[] = [], entry: readonly string[] = AGENIXD): Promise<{ status: number | null; messages: string[] }> {
  const socketPath = join(sb.root, "notify.sock");
  const received = join(sb.root, "received.txt");
  const receiver = spawn("python3", ["-c", RECEIVER, socketPath, received], { stdio: ["ignore", "pipe", "inherit"] });
  await once(receiver.stdout, "data");
  const r = spawnSync(process.execPath, [...entry, "activate", "--manifest", manifest, ...args], {
    encoding: "utf8",
    env: { ...process.env, NOTIFY_SOCKET: socketPath },
  });
  const [code] = (await once(receiver, "exit")) as [number];
  assert.equal(code, 0, "receiver saw READY=1");
  rmSync(socketPath);
  return { status: r.status, messages: readFileSync(received, "utf8").trim().split("\n") };
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
  test(`the ${entry} entry finds the sd-notify addon and reports READY=1`, async (t) => {
    const sb = new Sandbox(`notify-${entry}`);
    t.after(() => sb.cleanup());
    const { status, messages } = await activateNotified(sb, sb.manifest([{ name: "a" }]), [], ENTRIES[entry]);
    assert.equal(status, 0);
    assert.ok(messages.some((m) => m.includes("READY=1")), messages.join("\n"));
  });
}

test("the snapshot finds the addon also when its blob is named relatively, as --snapshot-blob=PATH", async (t) => {
  const sb = new Sandbox("notify-relative-blob");
  t.after(() => sb.cleanup());
  const blob = relative(process.cwd(), SNAPSHOT_BLOB);
  assert.ok(!blob.startsWith("/"));
  const { status, messages } = await activateNotified(sb, sb.manifest([{ name: "a" }]), [], [...SNAPSHOT_NODE_FLAGS, `--snapshot-blob=${blob}`, "--"]);
  assert.equal(status, 0);
  assert.ok(messages.some((m) => m.includes("READY=1")), messages.join("\n"));
});
