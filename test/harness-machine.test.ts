// harness/machine.ts keeps the NixOS test driver's rules, so that a scenario the harness passes
// does not fail under the real driver for a reason the harness hid (nixpkgs' QemuMachine).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Machine, MachineError, type Backend, type CommandResult } from "../harness/machine.js";

class FakeBackend implements Backend {
  readonly kind = "fake";
  running = false;
  boots = 0;
  reboots = 0;
  commands: string[] = [];
  isRunning() {
    return this.running;
  }
  async boot() {
    this.running = true;
    this.boots++;
  }
  async execute(command: string): Promise<CommandResult> {
    this.commands.push(command);
    return { status: 0, stdout: "", stderr: "" };
  }
  async reboot() {
    this.reboots++;
  }
  async shutdown() {
    this.running = false;
  }
  async crash() {
    this.running = false;
  }
  async journal() {
    return "";
  }
  async dispose() {}
}

test("reboot() needs a machine started with allowReboot, as the driver's -no-reboot QEMU does", async () => {
  const backend = new FakeBackend();
  const machine = new Machine("m", backend);
  await machine.start();
  await assert.rejects(machine.reboot(), (e: unknown) => e instanceof MachineError && /allow_reboot/.test(e.message) && /Shell disconnected/.test(e.message));
  assert.equal(backend.reboots, 0);

  const allowed = new Machine("m", new FakeBackend());
  await allowed.start({ allowReboot: true });
  await allowed.reboot();
});

test("a command on a machine that is down starts it without allowReboot (after a crash too)", async () => {
  const backend = new FakeBackend();
  const machine = new Machine("m", backend);
  await machine.start({ allowReboot: true });
  await machine.crash();
  await machine.succeed("true");
  assert.equal(backend.boots, 2);
  await assert.rejects(machine.reboot(), /allow_reboot/);
  await machine.crash();
  await machine.start({ allowReboot: true });
  await machine.reboot();
});

test("start() on a running machine changes nothing, as the driver's", async () => {
  const backend = new FakeBackend();
  const machine = new Machine("m", backend);
  await machine.start();
  await machine.start({ allowReboot: true });
  assert.equal(backend.boots, 1);
  await assert.rejects(machine.reboot(), /allow_reboot/);
});

test("commands run in bash under set -euo pipefail", async () => {
  const backend = new FakeBackend();
  const machine = new Machine("m", backend);
  await machine.succeed("false | true");
  assert.deepEqual(backend.commands, [`exec bash -c 'set -euo pipefail; false | true'`]);
});
