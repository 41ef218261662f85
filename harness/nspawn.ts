// systemd-nspawn backend. This host's PID 1 is not systemd and its /run is not a tmpfs, so
// nspawn runs inside a private mount namespace (`unshare -m`) with its own tmpfs on /run,
// without registering with machined (--register=no --keep-unit). The root is an overlay:
// the scenario's files and the cached Debian root below, this machine's state on top, so
// the cached root is never written. The container is driven with nsenter into its PID 1.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Backend, CommandResult } from "./machine.js";
import { MachineError } from "./machine.js";
import { run, sleep } from "./process.js";

export interface BindMount {
  host: string;
  container: string;
}

export interface NspawnOptions {
  /** Machine (host) name inside the container. */
  name: string;
  /** Lower layers, topmost first (e.g. the scenario's files, then the Debian root). */
  layers: readonly string[];
  /** Read-only bind mounts. */
  binds: readonly BindMount[];
  /** Directory for this machine's writable layer, console log and mount point. */
  stateDir: string;
}

/** nspawn's exit status when the container asked for a reboot. */
const rebootExitStatus = 133;
const commandPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export class NspawnBackend implements Backend {
  readonly kind = "nspawn";
  private child: ChildProcess | undefined;
  private initPid: number | undefined;
  private exited: Promise<number> | undefined;
  private readonly upper: string;
  private readonly work: string;
  private readonly merged: string;

  constructor(private readonly opts: NspawnOptions) {
    this.upper = join(opts.stateDir, "upper");
    this.work = join(opts.stateDir, "work");
    this.merged = join(opts.stateDir, "root");
    for (const d of [this.upper, this.work, this.merged]) mkdirSync(d, { recursive: true });
  }

  isRunning(): boolean {
    return this.child !== undefined;
  }

  async boot(): Promise<void> {
    if (this.child) return;
    const binds = this.opts.binds.map((b) => `--bind-ro=${b.host}:${b.container}`);
    const script = [
      "set -e",
      "mount -t tmpfs -o mode=0755 tmpfs /run",
      `mount -t overlay overlay -o ${overlayOptions(this.opts.layers, this.upper, this.work)} ${q(this.merged)}`,
      `exec systemd-nspawn --quiet --register=no --keep-unit --boot --console=pipe --machine=${q(this.opts.name)} --directory=${q(this.merged)} ${binds.map(q).join(" ")}`,
    ].join("\n");
    const console = openSync(join(this.opts.stateDir, "console.log"), "a");
    const child = spawn("unshare", ["--mount", "--propagation", "private", "bash", "-c", script], {
      stdio: ["ignore", console, console],
      env: { PATH: process.env.PATH ?? commandPath, LANG: "C.UTF-8" },
    });
    closeSync(console);
    this.child = child;
    this.exited = new Promise<number>((resolve) => {
      child.on("exit", (code, signal) => {
        this.child = undefined;
        this.initPid = undefined;
        resolve(code ?? (signal === "SIGKILL" ? 137 : 1));
      });
    });
    const pid = child.pid;
    if (pid === undefined) throw new MachineError("could not start systemd-nspawn");
    this.initPid = await this.waitForInit(pid);
    // systemctl works once PID 1 listens on its private socket.
    await this.waitFor(() => existsSync(`/proc/${this.initPid}/root/run/systemd/private`), 60_000, "systemd in the container");
  }

  private async waitForInit(nspawnPid: number): Promise<number> {
    let found: number | undefined;
    await this.waitFor(() => {
      found = containerInit(nspawnPid);
      return found !== undefined;
    }, 30_000, "the container's init");
    return found!;
  }

  private async waitFor(ready: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (!this.child) {
        throw new MachineError(`the container exited while waiting for ${what}; console:\n${this.consoleTail()}`);
      }
      if (Date.now() > deadline) throw new MachineError(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  private consoleTail(): string {
    const path = join(this.opts.stateDir, "console.log");
    return existsSync(path) ? readFileSync(path, "utf8").split("\n").slice(-40).join("\n") : "";
  }

  async execute(command: string, timeoutMs: number): Promise<CommandResult> {
    const pid = this.initPid;
    if (pid === undefined) throw new MachineError("the machine is not running");
    const r = await run(
      ["nsenter", "-t", String(pid), "-a", "--", "/usr/bin/env", "-i", `PATH=${commandPath}`, "HOME=/root", "LANG=C.UTF-8", "/bin/sh", "-c", command],
      { timeoutMs, env: { PATH: process.env.PATH ?? commandPath } },
    );
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  private async waitForExit(timeoutMs: number): Promise<number> {
    const exited = this.exited;
    if (!exited) throw new MachineError("the machine is not running");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    try {
      const result = await Promise.race([exited, timeout]);
      if (result === "timeout") throw new MachineError(`the container did not stop within ${timeoutMs / 1000} s`);
      return result;
    } finally {
      clearTimeout(timer);
    }
  }

  async reboot(): Promise<void> {
    const exited = this.waitForExit(120_000);
    // The command is cut off when the container goes down; its status says nothing.
    await this.execute("systemctl reboot", 30_000).catch(() => undefined);
    const status = await exited;
    if (status !== rebootExitStatus) {
      throw new MachineError(`expected systemd-nspawn to exit ${rebootExitStatus} (reboot), got ${status}`);
    }
    await this.boot();
  }

  async shutdown(): Promise<void> {
    const exited = this.waitForExit(120_000);
    await this.execute("systemctl poweroff", 30_000).catch(() => undefined);
    const status = await exited;
    if (status !== 0) throw new MachineError(`systemd-nspawn exited ${status} after poweroff`);
  }

  async crash(): Promise<void> {
    if (!this.child) return;
    const exited = this.waitForExit(30_000);
    // Killing the container's init takes its whole PID namespace down, as a power cut
    // would; killing only nspawn would leave the container's processes behind.
    if (this.initPid !== undefined) process.kill(this.initPid, "SIGKILL");
    else this.child.kill("SIGKILL");
    await exited;
  }

  async journal(args: readonly string[]): Promise<string> {
    if (this.child) {
      const r = await this.execute(`journalctl --no-pager ${args.map(q).join(" ")}`, 60_000);
      return r.stdout + r.stderr;
    }
    // Down: read the persistent journal the container left in its writable layer.
    const dir = join(this.upper, "var", "log", "journal");
    if (!existsSync(dir)) return "(no persistent journal)";
    const r = await run(["journalctl", "--no-pager", `--directory=${dir}`, ...args]);
    return r.stdout + r.stderr;
  }

  async dispose(): Promise<void> {
    await this.crash();
    rmSync(this.opts.stateDir, { recursive: true, force: true });
  }
}

function overlayOptions(layers: readonly string[], upper: string, work: string): string {
  for (const p of [...layers, upper, work]) {
    if (/[,:\s']/.test(p)) throw new MachineError(`overlay paths must not contain , : or spaces: ${p}`);
  }
  return `lowerdir=${layers.join(":")},upperdir=${upper},workdir=${work}`;
}

/** PID (host view) of the child of nspawn that is PID 1 in its own PID namespace. */
function containerInit(nspawnPid: number): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let status: string;
    try {
      status = readFileSync(`/proc/${entry}/status`, "utf8");
    } catch {
      continue;
    }
    const ppid = /^PPid:\s+(\d+)$/m.exec(status)?.[1];
    const nspid = /^NSpid:\s+([\d\s]+)$/m.exec(status)?.[1]?.trim().split(/\s+/);
    if (ppid === String(nspawnPid) && nspid && nspid.length > 1 && nspid[nspid.length - 1] === "1") {
      return Number(entry);
    }
  }
  return undefined;
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
