// sd_notify: STATUS= updates while working and READY=1 after the swap, received on a real
// unix datagram socket (as systemd's NOTIFY_SOCKET is).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { AGENIXD, Sandbox } from "./helpers/sandbox.js";

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

test("sends STATUS= while working and READY=1 once the new generation is live", async (t) => {
  const sb = new Sandbox("notify");
  t.after(() => sb.cleanup());
  const socketPath = join(sb.root, "notify.sock");
  const received = join(sb.root, "received.txt");
  const receiver = spawn("python3", ["-c", RECEIVER, socketPath, received], { stdio: ["ignore", "pipe", "inherit"] });
  await once(receiver.stdout, "data");
  const manifest = sb.manifest([{ name: "a" }, { name: "b" }]);
  const r = spawnSync(process.execPath, [AGENIXD, "activate", "--manifest", manifest], {
    encoding: "utf8",
    env: { ...process.env, NOTIFY_SOCKET: socketPath },
  });
  assert.equal(r.status, 0, r.stderr);
  const [code] = (await once(receiver, "exit")) as [number];
  assert.equal(code, 0, "receiver saw READY=1");
  const messages = readFileSync(received, "utf8").trim().split("\n");
  const statuses = messages.filter((m) => m.startsWith("STATUS="));
  assert.ok(statuses.some((s) => s.includes("decrypting 2 secrets")), messages.join("\n"));
  assert.ok(statuses.some((s) => s.includes("generation 1: 2 secrets installed")), messages.join("\n"));
  const readyIndex = messages.findIndex((m) => m.includes("READY=1"));
  const swapIndex = messages.findIndex((m) => m.includes("switching"));
  assert.ok(swapIndex >= 0 && readyIndex > swapIndex, "READY=1 comes after the swap");
  assert.ok(existsSync(sb.secretsDir));
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/1`);
});
