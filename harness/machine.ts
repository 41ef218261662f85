// The NixOS test driver's vocabulary (start, waitForUnit, succeed, fail, waitUntilSucceeds,
// getUnitInfo, reboot, crash, shutdown) over any backend that can boot a systemd machine and
// run a shell command in it as root, with the driver's rules (nixos/lib/test-driver/src/
// test_driver/machine/__init__.py, QemuMachine): a command runs in bash under
// `set -euo pipefail`; a command on a machine that is down starts it, without allow_reboot; and
// a machine started without allow_reboot cannot reboot (the driver gives QEMU -no-reboot, QEMU
// exits at the reboot and the next command fails with "Shell disconnected").
import { sleep } from "./process.js";

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

export interface Backend {
  readonly kind: string;
  /** True while the machine's init runs. */
  isRunning(): boolean;
  /** Boots the machine; resolves once commands can be run in it. */
  boot(): Promise<void>;
  /** Runs `sh -c command` as root inside the machine. */
  execute(command: string, timeoutMs: number): Promise<CommandResult>;
  /** Asks the machine to reboot and resolves once the new boot accepts commands. */
  reboot(): Promise<void>;
  /** Asks the machine to power off and resolves once it is down. */
  shutdown(): Promise<void>;
  /** Kills the machine without letting anything inside run (power cut). */
  crash(): Promise<void>;
  /** The journal of the machine (current or last boot, all boots when it is down). */
  journal(args: readonly string[]): Promise<string>;
  /** Stops the machine if needed and removes its state. */
  dispose(): Promise<void>;
}

export class MachineError extends Error {}

const defaultTimeoutMs = 900_000;

export interface StartOptions {
  /** The driver's start(allow_reboot=True): a guest reboot comes back instead of ending QEMU. */
  allowReboot?: boolean;
}

export class Machine {
  private allowReboot = false;

  constructor(
    readonly name: string,
    private readonly backend: Backend,
    private readonly log: (line: string) => void = () => {},
  ) {}

  /** A line in the run's log, under this machine's name. */
  note(line: string): void {
    this.log(`${this.name}: ${line}`);
  }

  get backendKind(): string {
    return this.backend.kind;
  }

  isUp(): boolean {
    return this.backend.isRunning();
  }

  async start(options: StartOptions = {}): Promise<void> {
    if (this.backend.isRunning()) return;
    this.allowReboot = options.allowReboot ?? false;
    this.log(`${this.name}: starting (${this.backend.kind}${this.allowReboot ? ", reboot allowed" : ""})`);
    await this.backend.boot();
  }

  /**
   * Like the NixOS driver: the command runs in bash with `set -euo pipefail`, and on a machine
   * that is down it boots it first (as start() does: without allow_reboot).
   */
  async execute(command: string, timeoutMs = defaultTimeoutMs): Promise<CommandResult> {
    await this.start();
    return this.backend.execute(`exec bash -c ${shellQuote(`set -euo pipefail; ${command}`)}`, timeoutMs);
  }

  async succeed(...commands: string[]): Promise<string> {
    let output = "";
    for (const command of commands) {
      this.log(`${this.name}: must succeed: ${command}`);
      const r = await this.execute(command);
      if (r.status !== 0) {
        throw new MachineError(`command \`${command}\` failed (exit code ${r.status})\n${r.stdout}${r.stderr}`);
      }
      output += r.stdout;
    }
    return output;
  }

  async fail(...commands: string[]): Promise<string> {
    let output = "";
    for (const command of commands) {
      this.log(`${this.name}: must fail: ${command}`);
      const r = await this.execute(command);
      if (r.status === 0) {
        throw new MachineError(`command \`${command}\` unexpectedly succeeded\n${r.stdout}`);
      }
      output += r.stdout;
    }
    return output;
  }

  async waitUntilSucceeds(command: string, timeoutS = 900): Promise<string> {
    this.log(`${this.name}: wait until succeeds: ${command}`);
    let last: CommandResult = { status: -1, stdout: "", stderr: "" };
    const deadline = Date.now() + timeoutS * 1000;
    while (Date.now() < deadline) {
      last = await this.execute(command);
      if (last.status === 0) return last.stdout;
      await sleep(250);
    }
    throw new MachineError(`timed out after ${timeoutS} s waiting for \`${command}\` to succeed (last exit ${last.status})\n${last.stdout}${last.stderr}`);
  }

  async waitUntilFails(command: string, timeoutS = 900): Promise<string> {
    this.log(`${this.name}: wait until fails: ${command}`);
    const deadline = Date.now() + timeoutS * 1000;
    while (Date.now() < deadline) {
      const r = await this.execute(command);
      if (r.status !== 0) return r.stdout;
      await sleep(250);
    }
    throw new MachineError(`timed out after ${timeoutS} s waiting for \`${command}\` to fail`);
  }

  /** `systemctl show` as a map, the way the NixOS driver's get_unit_info returns it. */
  async getUnitInfo(unit: string, user?: string): Promise<Record<string, string>> {
    const command = user === undefined
      ? `systemctl --no-pager show ${shellQuote(unit)}`
      : `su -l ${shellQuote(user)} --shell /bin/sh -c ${shellQuote(`XDG_RUNTIME_DIR=/run/user/$(id -u) systemctl --user --no-pager show ${shellQuote(unit)}`)}`;
    const r = await this.execute(command);
    if (r.status !== 0) {
      throw new MachineError(`retrieving systemctl info for unit ${unit} failed with exit code ${r.status}`);
    }
    const info: Record<string, string> = {};
    for (const line of r.stdout.split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) info[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return info;
  }

  /**
   * Waits for a unit to become active. Fails as soon as the unit is failed, or inactive with
   * no job pending that could still start it (the NixOS driver's rules).
   */
  async waitForUnit(unit: string, timeoutS = 900): Promise<void> {
    this.log(`${this.name}: waiting for unit ${unit}`);
    const deadline = Date.now() + timeoutS * 1000;
    while (Date.now() < deadline) {
      const info = await this.getUnitInfo(unit);
      const state = info.ActiveState;
      if (state === "active") return;
      if (state === "failed") throw new MachineError(`unit "${unit}" reached state "failed"`);
      if (state === "inactive") {
        const jobs = await this.execute("systemctl list-jobs --full 2>&1");
        if (jobs.stdout.includes("No jobs")) {
          const again = await this.getUnitInfo(unit);
          if (again.ActiveState === "active") return;
          if (again.ActiveState === "inactive") {
            throw new MachineError(`unit "${unit}" is inactive and there are no pending jobs`);
          }
        }
      }
      await sleep(200);
    }
    throw new MachineError(`timed out after ${timeoutS} s waiting for unit ${unit}`);
  }

  async reboot(): Promise<void> {
    if (!this.backend.isRunning()) throw new MachineError(`${this.name}: reboot() on a machine that is not running`);
    if (!this.allowReboot) {
      throw new MachineError(
        `${this.name}: reboot() on a machine started without allow_reboot: the NixOS test driver starts QEMU with ` +
          `-no-reboot, so QEMU exits at the reboot and the next command fails with "Shell disconnected"`,
      );
    }
    this.log(`${this.name}: rebooting`);
    await this.backend.reboot();
  }

  async shutdown(): Promise<void> {
    if (!this.backend.isRunning()) return;
    this.log(`${this.name}: shutting down`);
    await this.backend.shutdown();
  }

  /** The machine stays down; the next command starts it again, without allow_reboot. */
  async crash(): Promise<void> {
    this.log(`${this.name}: simulating a crash`);
    await this.backend.crash();
  }

  journal(args: readonly string[]): Promise<string> {
    return this.backend.journal(args);
  }

  dispose(): Promise<void> {
    return this.backend.dispose();
  }
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
