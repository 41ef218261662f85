// QEMU backend: the closest to nixosTest here (own kernel, initrd, udev, real reboots). KVM is
// not usable on these machines, so it is TCG with the `microvm` machine: a PVH boot of Debian's
// kernel (the vmlinux ELF inside vmlinuz) with a small busybox initrd, an ext4 root made with
// `mkfs.ext4 -d` from the cached Debian root under a per-run qcow2 overlay, and the scenario's
// files on a second disk that the initrd copies into the root on first boot. Commands go over a
// root shell on a virtio console (hvc0), as the NixOS test driver's backdoor does.
//
// A scenario with `tpm` gets a TPM 2.0: swtpm (a libtpms TPM, its state a directory that lives as
// long as the machine, across reboots) behind `-tpmdev emulator`, as a `tpm-tis` device. microvm
// can carry one: tpm-tis is an ISA device at the standard TIS address (0xfed40000) and microvm has
// an ISA bus. Its ACPI tables list the TPM (MSFT0101) but, in QEMU 7.2, without the TPM2 table the
// kernel's ACPI probe wants ("[Firmware Bug]: failed to get TPM2 ACPI table"), so the guest is
// told to probe the TIS address itself (tpm_tis.force=1), polling (no interrupt is wired:
// tpm_tis.interrupts=0). The guest then has /dev/tpm0 and /dev/tpmrm0 from the kernel, before
// userspace (Debian builds tpm_tis in), as on a PC; no other machine type is needed.
import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, symlinkSync, openSync, closeSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { join } from "node:path";
import { cached, repoRoot } from "./cache.js";
import { cpioArchive, type CpioEntry } from "./cpio.js";
import { debianRoot } from "./debian-root.js";
import { agenixdRoot } from "./fixture.js";
import type { Backend, CommandResult } from "./machine.js";
import { MachineError } from "./machine.js";
import { runChecked, sleep } from "./process.js";

export interface QemuOptions {
  name: string;
  /** The scenario's layer (./fixture.ts). */
  fixture: string;
  stateDir: string;
  /** More disks (raw images, writable), after the root and the payload: /dev/vdc, /dev/vdd, ... */
  disks?: readonly string[];
  /** Attach a TPM 2.0 (swtpm), its state kept in stateDir/tpm across reboots. */
  tpm?: boolean;
}

interface BootFiles {
  vmlinux: string;
  initrd: string;
  rootImage: string;
}

/** Modules the initrd loads to reach an ext4 root on virtio-mmio block devices (ext4 needs crc32c
 * through the crypto API, which modules.dep does not list). */
const initrdModules = ["virtio_mmio", "virtio_blk", "crc32c_generic", "ext4"];
const backdoorReady = "HARNESS-BACKDOOR-READY";
const guestUnitDir = "etc/systemd/system";

export class QemuBackend implements Backend {
  readonly kind = "qemu";
  private child: ChildProcess | undefined;
  private swtpm: ChildProcess | undefined;
  private exited: Promise<number> | undefined;
  private socket: Socket | undefined;
  private buffer = "";
  private lineWaiters: ((line: string) => boolean)[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private nextId = 1;
  private bootId: string | undefined;

  private constructor(
    private readonly opts: QemuOptions,
    private readonly boot_: BootFiles,
    private readonly payloadImage: string,
    private readonly overlay: string,
  ) {}

  static async create(opts: QemuOptions): Promise<QemuBackend> {
    mkdirSync(opts.stateDir, { recursive: true });
    const boot = await bootFiles();
    const payloadDir = join(opts.stateDir, "payload");
    buildPayload(opts.fixture, payloadDir);
    const payloadImage = join(opts.stateDir, "payload.ext4");
    await runChecked(["mkfs.ext4", "-q", "-F", "-L", "agxpayload", "-d", payloadDir, payloadImage, "768M"]);
    rmSync(payloadDir, { recursive: true, force: true });
    const overlay = join(opts.stateDir, "root.qcow2");
    await runChecked(["qemu-img", "create", "-q", "-f", "qcow2", "-b", boot.rootImage, "-F", "raw", overlay]);
    return new QemuBackend(opts, boot, payloadImage, overlay);
  }

  isRunning(): boolean {
    return this.child !== undefined;
  }

  async boot(): Promise<void> {
    if (this.child) return;
    const socketPath = join(this.opts.stateDir, "backdoor.sock");
    rmSync(socketPath, { force: true });
    const append = [
      "console=ttyS0",
      // TCG: without it the guest hangs calibrating the TSC.
      `tsc_early_khz=${tscKhz()}`,
      "panic=-1",
      "loglevel=4",
      // microvm has no keyboard controller nor ACPI reset register: reboot by triple fault,
      // which -no-reboot turns into QEMU exiting.
      "reboot=t",
      ...(this.opts.tpm ? ["tpm_tis.force=1", "tpm_tis.interrupts=0"] : []),
    ].join(" ");
    const tpmArgs = this.opts.tpm ? await this.startSwtpm() : [];
    const args = [
      "-M", "microvm,rtc=on,isa-serial=on",
      "-accel", "tcg",
      "-cpu", "max",
      "-smp", "2",
      "-m", "1024",
      "-nodefaults", "-no-user-config", "-display", "none",
      // A guest reboot stops QEMU; the backend starts it again, like nspawn's exit 133.
      "-no-reboot",
      "-kernel", this.boot_.vmlinux,
      "-initrd", this.boot_.initrd,
      "-append", append,
      "-serial", `file:${join(this.opts.stateDir, "console.log")}`,
      "-drive", `id=root,file=${this.overlay},format=qcow2,if=none`,
      "-device", "virtio-blk-device,drive=root",
      "-drive", `id=payload,file=${this.payloadImage},format=raw,if=none,readonly=on`,
      "-device", "virtio-blk-device,drive=payload",
      ...(this.opts.disks ?? []).flatMap((file, i) => ["-drive", `id=disk${i},file=${file},format=raw,if=none`, "-device", `virtio-blk-device,drive=disk${i}`]),
      "-device", "virtio-serial-device",
      "-chardev", `socket,id=backdoor,path=${socketPath},server=on,wait=off`,
      "-device", "virtconsole,chardev=backdoor",
      ...tpmArgs,
    ];
    const log = openSync(join(this.opts.stateDir, "qemu.log"), "a");
    const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", log, log] });
    closeSync(log);
    this.child = child;
    this.exited = new Promise<number>((resolve) => {
      child.on("exit", (code, signal) => {
        this.child = undefined;
        // swtpm ends with QEMU's connection; never let one outlive its machine.
        this.swtpm?.kill("SIGKILL");
        this.swtpm = undefined;
        this.socket?.destroy();
        this.socket = undefined;
        resolve(code ?? (signal ? 137 : 1));
      });
    });
    const deadline = Date.now() + 10_000;
    while (!existsSync(socketPath)) {
      if (!this.child || Date.now() > deadline) throw new MachineError(`QEMU did not start:\n${this.tail("qemu.log")}`);
      await sleep(50);
    }
    this.buffer = "";
    this.socket = await connect(socketPath);
    this.socket.on("data", (b: Buffer) => this.onData(b.toString("latin1")));
    // A new boot announces itself with its boot id; never trust a line from the previous boot.
    const previous = this.bootId;
    let seen: string | undefined;
    await this.waitForLine((line) => {
      const m = new RegExp(`${backdoorReady} (\\S+)`).exec(line);
      if (m && m[1] !== previous) seen = m[1];
      return seen !== undefined;
    }, 600_000, "the backdoor shell");
    this.bootId = seen;
  }

  /**
   * One swtpm per boot (it exits when QEMU closes its control channel), on the machine's TPM
   * state: what the TPM stored (its seeds, so the keys it makes) survives reboots, as a real
   * TPM's NVRAM does. Returns QEMU's arguments for it.
   */
  private async startSwtpm(): Promise<string[]> {
    const dir = join(this.opts.stateDir, "tpm");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const socketPath = join(dir, "swtpm.sock");
    rmSync(socketPath, { force: true });
    const log = openSync(join(this.opts.stateDir, "swtpm.log"), "a");
    const swtpm = spawn("swtpm", ["socket", "--tpm2", "--tpmstate", `dir=${dir}`, "--ctrl", `type=unixio,path=${socketPath}`, "--log", "level=1"], { stdio: ["ignore", log, log] });
    closeSync(log);
    this.swtpm = swtpm;
    swtpm.on("exit", () => {
      if (this.swtpm === swtpm) this.swtpm = undefined;
    });
    const deadline = Date.now() + 10_000;
    while (!existsSync(socketPath)) {
      if (this.swtpm !== swtpm || Date.now() > deadline) throw new MachineError(`swtpm did not start:\n${this.tail("swtpm.log")}`);
      await sleep(50);
    }
    return ["-chardev", `socket,id=chrtpm,path=${socketPath}`, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"];
  }

  private tail(file: string): string {
    const p = join(this.opts.stateDir, file);
    return existsSync(p) ? readFileSync(p, "latin1").split("\n").slice(-40).join("\n") : "";
  }

  private onData(text: string): void {
    this.buffer += text;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).replace(/\r/g, "");
      this.buffer = this.buffer.slice(nl + 1);
      this.lineWaiters = this.lineWaiters.filter((w) => !w(line));
    }
  }

  private waitForLine(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.lineWaiters = this.lineWaiters.filter((w) => w !== waiter);
        reject(new MachineError(`timed out after ${timeoutMs / 1000} s waiting for ${what}; console:\n${this.tail("console.log")}`));
      }, timeoutMs);
      const waiter = (line: string) => {
        if (!match(line)) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      this.lineWaiters.push(waiter);
      void this.exited?.then(() => {
        if (!this.lineWaiters.includes(waiter)) return;
        clearTimeout(timer);
        this.lineWaiters = this.lineWaiters.filter((w) => w !== waiter);
        reject(new MachineError(`the machine stopped while waiting for ${what}; console:\n${this.tail("console.log")}`));
      });
    });
  }

  execute(command: string, timeoutMs: number): Promise<CommandResult> {
    const result = this.queue.then(() => this.executeNow(command, timeoutMs));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async executeNow(command: string, timeoutMs: number): Promise<CommandResult> {
    const socket = this.socket;
    if (!socket) throw new MachineError("the machine is not running");
    const id = this.nextId++;
    let result: CommandResult | undefined;
    // The marker is split in the command so that an echo of the input can never match it.
    const line = `sh -c ${q(command)} </dev/null >/tmp/.harness-out 2>/tmp/.harness-err; s=$?; printf '%s%s %s %s. %s.\\n' '@@' 'R${id}' "$s" "$(base64 -w0 /tmp/.harness-out)" "$(base64 -w0 /tmp/.harness-err)"\n`;
    const done = this.waitForLine((l) => {
      const m = /@@R(\d+) (\d+) (\S*)\. (\S*)\.$/.exec(l);
      if (!m || Number(m[1]) !== id) return false;
      result = {
        status: Number(m[2]),
        stdout: Buffer.from(m[3]!, "base64").toString("utf8"),
        stderr: Buffer.from(m[4]!, "base64").toString("utf8"),
      };
      return true;
    }, timeoutMs, `command ${JSON.stringify(command)}`);
    socket.write(line);
    await done;
    return result!;
  }

  private async waitForExit(timeoutMs: number): Promise<number> {
    const exited = this.exited;
    if (!exited || !this.child) throw new MachineError("the machine is not running");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((r) => { timer = setTimeout(() => r("timeout"), timeoutMs); });
    try {
      const r = await Promise.race([exited, timeout]);
      if (r === "timeout") throw new MachineError(`QEMU did not stop within ${timeoutMs / 1000} s`);
      return r;
    } finally {
      clearTimeout(timer);
    }
  }

  async reboot(): Promise<void> {
    const exited = this.waitForExit(600_000);
    this.socket?.write("systemctl reboot\n");
    await exited;
    await this.boot();
  }

  async shutdown(): Promise<void> {
    const exited = this.waitForExit(600_000);
    this.socket?.write("systemctl poweroff\n");
    await exited;
  }

  async crash(): Promise<void> {
    if (!this.child) return;
    const exited = this.waitForExit(30_000);
    this.child.kill("SIGKILL");
    await exited;
  }

  async journal(args: readonly string[]): Promise<string> {
    if (!this.child) return "(the machine is down; its journal is in its disk image)";
    const r = await this.execute(`journalctl --no-pager ${args.map(q).join(" ")}`, 120_000);
    return r.stdout + r.stderr;
  }

  async dispose(): Promise<void> {
    await this.crash();
    this.swtpm?.kill("SIGKILL");
    rmSync(this.opts.stateDir, { recursive: true, force: true });
  }
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path, () => resolve(s));
    s.on("error", reject);
  });
}

function tscKhz(): number {
  const mhz = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1];
  return mhz ? Math.round(Number(mhz) * 1000) : 2_000_000;
}

/** The scenario's layer plus what the nspawn backend bind-mounts, and the guest's own settings. */
function buildPayload(fixture: string, dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  cpSync(fixture, dir, { recursive: true, verbatimSymlinks: true });
  cpSync(process.execPath, join(dir, "usr/local/bin/node"));
  cpSync(join(repoRoot, "dist"), join(dir, agenixdRoot.slice(1), "dist"), { recursive: true });
  cpSync(join(repoRoot, "node_modules"), join(dir, agenixdRoot.slice(1), "node_modules"), { recursive: true, verbatimSymlinks: true });
  const units = join(dir, guestUnitDir);
  mkdirSync(join(units, "multi-user.target.wants"), { recursive: true });
  writeFileSync(join(units, "harness-backdoor.service"), [
    "[Unit]",
    "Description=Root shell for the boot harness",
    "Requires=dev-hvc0.device",
    "After=dev-hvc0.device",
    "",
    "[Service]",
    `ExecStart=/bin/sh -c 'stty -echo; echo ${backdoorReady} $(cat /proc/sys/kernel/random/boot_id); exec /bin/sh'`,
    "Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8",
    "StandardInput=tty-force",
    "StandardOutput=tty",
    "StandardError=tty",
    "TTYPath=/dev/hvc0",
    "TTYReset=yes",
    // An interactive shell ignores SIGTERM; without this, every shutdown waits 90 s for it.
    "KillSignal=SIGKILL",
    "",
  ].join("\n"));
  symlinkSync("../harness-backdoor.service", join(units, "multi-user.target.wants", "harness-backdoor.service"));
  // Debian would start a login prompt on the console the backdoor uses.
  for (const getty of ["serial-getty@hvc0.service", "serial-getty@ttyS0.service", "getty@tty1.service"]) {
    symlinkSync("/dev/null", join(units, getty));
  }
  writeFileSync(join(dir, "etc/fstab"), "LABEL=agxroot / ext4 rw 0 1\n");
}

/** Builds the cached images the QEMU machines boot, if missing. */
export async function prepareQemu(): Promise<void> {
  await bootFiles();
}

/** Kernel (vmlinux for a PVH boot), initrd and root image, cached by the Debian root they come from. */
async function bootFiles(): Promise<BootFiles> {
  const root = await debianRoot("qemu");
  const dir = await cached("qemu-boot", { root, initrdModules, recipe: 1 }, async (out) => {
    mkdirSync(out, { recursive: true });
    const vmlinuz = readdirSync(join(root, "boot")).find((f) => f.startsWith("vmlinuz-"));
    if (!vmlinuz) throw new Error(`no kernel in ${root}/boot`);
    const release = vmlinuz.slice("vmlinuz-".length);
    await extractVmlinux(join(root, "boot", vmlinuz), join(out, "vmlinux"));
    writeFileSync(join(out, "initrd.img"), await buildInitrd(root, release));
    console.log("harness: making the QEMU root image (mkfs.ext4 -d)");
    await runChecked(["mkfs.ext4", "-q", "-L", "agxroot", "-d", root, join(out, "root.img"), "4G"]);
  });
  return { vmlinux: join(dir, "vmlinux"), initrd: join(dir, "initrd.img"), rootImage: join(dir, "root.img") };
}

/** vmlinuz is a bzImage; QEMU boots the ELF inside it directly (PVH), without firmware. */
async function extractVmlinux(vmlinuz: string, out: string): Promise<void> {
  const image = readFileSync(vmlinuz);
  const formats: [Buffer, string[]][] = [
    [Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), ["xz", "-dc", "--single-stream"]],
    [Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), ["zstd", "-dcq"]],
    [Buffer.from([0x1f, 0x8b, 0x08]), ["gzip", "-dc"]],
  ];
  for (const [magic, argv] of formats) {
    for (let at = image.indexOf(magic); at >= 0; at = image.indexOf(magic, at + 1)) {
      const r = await runRaw(argv, image.subarray(at));
      if (r.length > 4 && r.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
        writeFileSync(out, r);
        return;
      }
    }
  }
  throw new Error(`could not find the vmlinux ELF inside ${vmlinuz}`);
}

function runRaw(argv: string[], input: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "ignore"] });
    const out: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stdin.on("error", () => undefined);
    child.on("close", () => resolve(Buffer.concat(out)));
    child.stdin.end(input);
  });
}

const initScript = `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# modprobe would read module parameters from the command line; insmod needs them given.
mmio=$(tr ' ' '\\n' < /proc/cmdline | sed -n 's/^virtio_mmio\\.//p' | tr '\\n' ' ')
for m in $(cat /modules.order); do
  case $m in
    */virtio_mmio.ko) insmod /$m $mmio ;;
    *) insmod /$m ;;
  esac
done
for i in $(seq 100); do
  root=$(findfs LABEL=agxroot 2>/dev/null) && payload=$(findfs LABEL=agxpayload 2>/dev/null) && break
  sleep 0.1
done
mkdir -p /newroot /payload
mount -t ext4 "$root" /newroot || { echo "initrd: cannot mount the root"; sleep 5; poweroff -f; }
if [ ! -e /newroot/etc/agenixd-harness/installed ]; then
  mount -t ext4 -o ro "$payload" /payload
  cp -a /payload/. /newroot/
  rm -rf /newroot/lost+found
  mkdir -p /newroot/etc/agenixd-harness
  : > /newroot/etc/agenixd-harness/installed
  umount /payload
fi
umount /proc /sys
umount -l /dev
exec switch_root /newroot /sbin/init
`;

/** busybox, the modules for virtio-mmio disks and ext4 (with their dependencies, in load order). */
async function buildInitrd(root: string, release: string): Promise<Buffer> {
  const modDir = join(root, "usr/lib/modules", release);
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(join(modDir, "modules.dep"), "utf8").split("\n")) {
    const [mod, rest] = line.split(":");
    if (mod) deps.set(mod, (rest ?? "").trim().split(/\s+/).filter(Boolean));
  }
  const builtin = readFileSync(join(modDir, "modules.builtin"), "utf8");
  const ordered: string[] = [];
  const visit = (mod: string) => {
    if (ordered.includes(mod)) return;
    for (const d of [...(deps.get(mod) ?? [])].reverse()) visit(d);
    ordered.push(mod);
  };
  for (const name of initrdModules) {
    const mod = [...deps.keys()].find((m) => new RegExp(`/${name}\\.ko(\\.[a-z]+)?$`).test(m));
    if (mod) visit(mod);
    else if (!new RegExp(`/${name}\\.ko$`, "m").test(builtin)) throw new Error(`kernel ${release} has no module ${name}`);
  }
  const entries: CpioEntry[] = [];
  const dirs = new Set<string>();
  const addDir = (path: string) => {
    const parts = path.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!dirs.has(d)) {
        dirs.add(d);
        entries.push({ path: d, mode: 0o040755 });
      }
    }
  };
  for (const d of ["bin", "sbin", "proc", "sys", "dev", "newroot", "payload", "mods"]) addDir(d);
  entries.push({ path: "bin/busybox", mode: 0o100755, data: readFileSync("/bin/busybox") });
  const applets = (await runChecked(["/bin/busybox", "--list"])).split("\n").filter(Boolean);
  for (const a of applets) if (a !== "busybox") entries.push({ path: `bin/${a}`, mode: 0o120777, linkTarget: "busybox" });
  const order: string[] = [];
  for (const mod of ordered) {
    let data: Buffer = readFileSync(join(modDir, mod));
    let name = mod;
    if (mod.endsWith(".xz")) { data = await runRaw(["xz", "-dc"], data); name = mod.slice(0, -3); }
    if (mod.endsWith(".zst")) { data = await runRaw(["zstd", "-dcq"], data); name = mod.slice(0, -4); }
    const path = `mods/${name.split("/").pop()}`;
    entries.push({ path, mode: 0o100644, data });
    order.push(path);
  }
  entries.push({ path: "modules.order", mode: 0o100644, data: Buffer.from(order.join("\n") + "\n") });
  entries.push({ path: "init", mode: 0o100755, data: Buffer.from(initScript) });
  return cpioArchive(entries);
}

function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

