// How early agenixd.service runs at boot (issue 19, nix/boot-order.nix and nix/unit.nix): before
// cryptsetup-pre.target, zfs-import.target and network-pre.target when every input is on a file
// system the initrd mounts, after local-fs.target with a warning naming the option otherwise, and
// the userborn ordering cycle called out. Evaluated with Debian's nix-instantiate.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { nixEval, nixSuite } from "./helpers/nix.js";

const nixDir = join(fileURLToPath(new URL("../../", import.meta.url)), "nix");
const nix = nixSuite();

interface BootOrder {
  early: boolean;
  late: { option: string; path: string; mount: string }[];
  warnings: string[];
}
const orderOf = (args: unknown) => nixEval(`import ${nixDir}/boot-order.nix arg`, args) as BootOrder;
const unitOf = (args: unknown) =>
  nixEval(`import ${nixDir}/unit.nix arg`, args) as {
    services: Record<string, { after: string[]; before: string[]; wantedBy: string[]; requiredBy?: string[]; unitConfig: { RequiresMountsFor: string[] } }>;
    unitFiles: Record<string, string>;
  };

const fileSystems = {
  "/": { mountPoint: "/" },
  "/nix": { mountPoint: "/nix" },
  "/var": { mountPoint: "/var" },
  "/persist": { mountPoint: "/persist" },
  "/state": { mountPoint: "/state", neededForBoot: true },
  "/persist/deep": { mountPoint: "/persist/deep", neededForBoot: true },
};
const base = { agenixd: "/nix/store/x-agenixd/bin/agenixd", manifest: "/nix/store/m-manifest.json", identityPaths: ["/etc/ssh/ssh_host_ed25519_key"] };

describe("boot order", nix, () => {
  test("identities on the root, on a path the initrd always mounts (/var) or on a neededForBoot mount: early, no warning", () => {
    const r = orderOf({ fileSystems, identityPaths: ["/etc/ssh/ssh_host_ed25519_key", "/var/lib/key", "/state/key", "/persist/deep/key", "/persistent/key"] });
    assert.deepEqual(r, { early: true, late: [], warnings: [] });
    assert.equal(orderOf({ fileSystems: {}, identityPaths: ["/etc/ssh/key"] }).early, true, "no fileSystems declared: the root");
  });

  test("an identity or a secret path on a mount the initrd does not mount: not early, one warning naming the option, the path and the mount", () => {
    const r = orderOf({ fileSystems, identityPaths: ["/persist/etc/ssh/key", "/etc/ssh/key"], secretPaths: { 'age.secrets."db".path': "/persist/db.pw" } });
    assert.equal(r.early, false);
    assert.deepEqual(r.late, [
      { option: "age.identityPaths", path: "/persist/etc/ssh/key", mount: "/persist" },
      { option: 'age.secrets."db".path', path: "/persist/db.pw", mount: "/persist" },
    ]);
    assert.equal(r.warnings.length, 2);
    assert.match(r.warnings[0]!, /^age\.identityPaths has \/persist\/etc\/ssh\/key, on \/persist, .*cryptsetup-pre\.target.*fileSystems\."\/persist"\.neededForBoot = true/);
    assert.match(r.warnings[1]!, /^age\.secrets\."db"\.path has \/persist\/db\.pw/);
  });

  test("userborn with the users phase and an identity on a late mount: the ordering cycle is named", () => {
    const args = { fileSystems, identityPaths: ["/persist/key"], usersPhase: true };
    const cycle = (w: string) => w.startsWith("agenixd-users.service") && w.includes("userborn.service") && w.includes("/persist");
    assert.equal(orderOf({ ...args, userManagement: "userborn" }).warnings.filter(cycle).length, 1);
    assert.equal(orderOf({ ...args, userManagement: "sysusers" }).warnings.filter(cycle).length, 0, "systemd-sysusers is not before local-fs-pre.target");
    assert.equal(orderOf({ ...args, usersPhase: false, userManagement: "userborn" }).warnings.filter(cycle).length, 0, "no early unit");
  });

  test("unit.nix: early orders agenixd.service before the crypttab, ZFS and network targets, after the root's remount only", () => {
    const early = unitOf({ ...base, early: true, secretPaths: ["/var/lib/app/pw"] }).services.agenixd!;
    for (const t of ["cryptsetup-pre.target", "zfs-import.target", "network-pre.target", "sysinit.target"]) assert.ok(early.before.includes(t), t);
    assert.deepEqual(early.after, ["systemd-remount-fs.service"]);
    assert.deepEqual((early as unknown as { wants: string[] }).wants, ["cryptsetup-pre.target", "network-pre.target"], "passive targets: pulled in by the unit that runs before them");
    assert.match(unitOf({ ...base, early: true }).unitFiles["agenixd.service"]!, /^Wants=cryptsetup-pre\.target network-pre\.target$/m);
    assert.deepEqual(early.unitConfig.RequiresMountsFor, [...base.identityPaths, "/var/lib/app/pw"]);
    const late = unitOf(base).services.agenixd!;
    assert.deepEqual(late.after, ["local-fs.target"]);
    assert.ok(!late.before.includes("cryptsetup-pre.target"));
    const users = unitOf({ ...base, early: true, usersPhase: true, userManagement: "userborn" }).services.agenixd!;
    assert.deepEqual(users.after, ["systemd-remount-fs.service", "userborn.service", "agenixd-users.service"]);
  });
});

// The ordering the rendered units meet at boot, checked by systemd itself: `systemd-analyze verify
// sysinit.target` builds the boot's start transaction (Debian's systemd 252, the harness root's,
// with the units NixOS has that Debian's differ from or lacks given here) and reports every
// ordering cycle, and the job it deletes to break it, as a real boot would.
const NIXOS_UNITS: Record<string, string> = {
  // nixos/modules/services/system/userborn.nix, as NixOS renders it.
  "userborn.service": `[Unit]
Description=Manage Users and Groups
DefaultDependencies=false
After=systemd-remount-fs.service systemd-tmpfiles-setup-dev-early.service
Before=systemd-tmpfiles-setup-dev.service sysinit.target shutdown.target sysinit-reactivation.target
Conflicts=shutdown.target
[Service]
Type=oneshot
RemainAfterExit=true
ExecStart=/usr/bin/true
`,
  // Upstream's current unit (NixOS ships upstream's): no longer after systemd-sysusers.service, as Debian 12's is.
  "systemd-tmpfiles-setup-dev.service": `[Unit]
Description=Create Static Device Nodes in /dev
DefaultDependencies=no
Before=sysinit.target local-fs-pre.target systemd-udevd.service
Conflicts=shutdown.target initrd-switch-root.target
Before=shutdown.target initrd-switch-root.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/true
`,
  "sysinit-reactivation.target": "[Unit]\nDescription=Reactivate sysinit units\n",
  // Upstream's (systemd 256 and later), with the drop-in systemd-tpm2-generator adds when the firmware announces a TPM.
  "tpm2.target": "[Unit]\nDescription=Trusted Platform Module\nDocumentation=man:systemd.special(7)\n",
  "tpm2.target.d/tpm2-generator.conf": "[Unit]\nWants=dev-tpmrm0.device\nAfter=dev-tpmrm0.device\n",
  // A separate /persist in fstab, not neededForBoot, on the crypttab volume below:
  // systemd-fstab-generator's unit, wanted by local-fs.target (systemd orders a mount of
  // /dev/mapper/data after blockdev@dev-mapper-data.target, which the volume's unit is before).
  "persist.mount": "[Unit]\nBefore=local-fs.target\n[Mount]\nWhat=/dev/mapper/data\nWhere=/persist\nType=ext4\n",
  // A crypttab data volume opened with a keyfile from /run/agenix, as systemd-cryptsetup-generator writes it.
  "systemd-cryptsetup@data.service": `[Unit]
DefaultDependencies=no
After=cryptsetup-pre.target systemd-udevd-kernel.socket
Before=blockdev@dev-mapper-data.target cryptsetup.target umount.target
Wants=blockdev@dev-mapper-data.target
Conflicts=umount.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/true
`,
};

// pcsc-lite's pcscd.socket (etc/pcscd.socket.in, ipcdir /run/pcscd), which NixOS's services.pcscd
// installs; its service a stand-in. A consumer of a YubiKey-opened secret, and an early unit.
const PCSCD_UNITS: Record<string, string> = {
  "pcscd.socket": "[Unit]\nDescription=PC/SC Smart Card Daemon Activation Socket\n[Socket]\nListenStream=/run/pcscd/pcscd.comm\nSocketMode=0660\n[Install]\nWantedBy=sockets.target\n",
  "pcscd.service": "[Unit]\nDescription=PC/SC Smart Card Daemon\nRequires=pcscd.socket\n[Service]\nExecStart=/usr/bin/true\n",
  "wireguard-wg0.service": "[Unit]\nDescription=WireGuard wg0\n[Service]\nType=oneshot\nExecStart=/usr/bin/true\n",
  "early-net.service": "[Unit]\nDefaultDependencies=no\nBefore=sysinit.target network-pre.target\n[Service]\nType=oneshot\nExecStart=/usr/bin/true\n",
};

function verifyBoot(args: Record<string, unknown>, target = "sysinit.target", extraUnits: Record<string, string> = {}, extraWants: [string, string][] = []): string {
  const dir = mkdtempSync("/tmp/agenixd-verify-");
  try {
    const r = unitOf({ ...base, agenixd: "/usr/bin/true", systemctl: "/usr/bin/systemctl", ...args });
    for (const [name, text] of Object.entries({ ...NIXOS_UNITS, ...extraUnits, ...r.unitFiles })) {
      mkdirSync(join(dir, name, ".."), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    const link = (target: string, unit: string, kind = "wants", from = join(dir, unit)) => {
      mkdirSync(join(dir, `${target}.${kind}`), { recursive: true });
      symlinkSync(from, join(dir, `${target}.${kind}`, unit));
    };
    // NixOS makes these links from wantedBy/requiredBy; the generators make the fstab and crypttab ones.
    for (const [name, s] of Object.entries(r.services)) {
      for (const t of s.wantedBy) link(t, `${name}.service`);
      for (const t of s.requiredBy ?? []) link(t, `${name}.service`, "requires");
    }
    link("sysinit.target", "userborn.service");
    link("local-fs.target", "persist.mount", "requires");
    link("local-fs.target", "systemd-remount-fs.service", "wants", "/lib/systemd/system/systemd-remount-fs.service");
    link("cryptsetup.target", "systemd-cryptsetup@data.service", "requires");
    for (const [t, unit] of extraWants) link(t, unit);
    const v = spawnSync("systemd-analyze", ["verify", "--man=no", target], { encoding: "utf8", env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:`, SYSTEMD_LOG_LEVEL: "warning" } });
    if (v.error) throw v.error;
    return v.stderr;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("boot order, as systemd-analyze verify sees the boot transaction", nix, () => {
  const cycles = (out: string) => out.split("\n").filter((l) => /ordering cycle|deleted to break/.test(l));

  test("userborn with a password secret and the host key on a late /persist: systemd finds the cycle boot-order.nix warns about, and drops a job", () => {
    const identityPaths = ["/persist/etc/ssh/ssh_host_ed25519_key"];
    const order = orderOf({ fileSystems, identityPaths, usersPhase: true, userManagement: "userborn" });
    assert.equal(order.warnings.filter((w) => w.startsWith("agenixd-users.service")).length, 1);
    const out = verifyBoot({ identityPaths, early: order.early, usersPhase: true, userManagement: "userborn" });
    const found = cycles(out);
    assert.ok(found.some((l) => /Found ordering cycle/.test(l)), out);
    for (const unit of ["agenixd-users.service", "persist.mount", "userborn.service", "local-fs-pre.target"]) assert.match(out, new RegExp(`Found (ordering cycle|dependency) on ${unit.replace(".", "\\.")}/start`), out);
    assert.ok(found.some((l) => /Job \S+ deleted to break ordering cycle/.test(l)), out);
  });

  test("the same with the host key on the root: no cycle", () => {
    const identityPaths = ["/etc/ssh/ssh_host_ed25519_key"];
    const order = orderOf({ fileSystems, identityPaths, usersPhase: true, userManagement: "userborn" });
    assert.deepEqual(order, { early: true, late: [], warnings: [] });
    assert.deepEqual(cycles(verifyBoot({ identityPaths, early: true, usersPhase: true, userManagement: "userborn" })), []);
  });

  test("sysusers with the host key on /persist: no cycle with upstream's units (systemd-sysusers is not before local-fs-pre.target), so no cycle warning", () => {
    const identityPaths = ["/persist/etc/ssh/ssh_host_ed25519_key"];
    const order = orderOf({ fileSystems, identityPaths, usersPhase: true, userManagement: "sysusers" });
    assert.equal(order.warnings.filter((w) => w.startsWith("agenixd-users.service")).length, 0);
    assert.deepEqual(cycles(verifyBoot({ identityPaths, early: order.early, usersPhase: true, userManagement: "sysusers" })), []);
  });

  test("early agenixd.service (no users phase) next to the crypttab volume and a /persist on it that agenixd does not read: no cycle", () => {
    assert.deepEqual(cycles(verifyBoot({ early: true })), []);
  });

  test("why an identity on /persist is not early: with /persist on a crypttab volume, ordering before cryptsetup-pre.target would close a cycle through the mount", () => {
    const identityPaths = ["/persist/etc/ssh/ssh_host_ed25519_key"];
    assert.equal(orderOf({ fileSystems, identityPaths }).early, false);
    assert.deepEqual(cycles(verifyBoot({ identityPaths, early: false })), []);
    const forced = verifyBoot({ identityPaths, early: true });
    assert.match(forced, /Found ordering cycle/, forced);
    assert.match(forced, /Found (ordering cycle|dependency) on agenixd\.service\/start/, forced);
  });
});

describe("the TPM: a sealed identity or age-plugin-tpm waits for tpm2.target", nix, () => {
  const tpm = (args: Record<string, unknown>) => {
    const r = unitOf({ ...base, usersPhase: true, userManagement: "userborn", ...args });
    return Object.fromEntries(Object.entries(r.services).map(([n, s]) => [n, { after: s.after.includes("tpm2.target"), wants: ((s as unknown as { wants?: string[] }).wants ?? []).includes("tpm2.target") }]));
  };
  const both = { after: true, wants: true };
  const neither = { after: false, wants: false };

  test("both units, for a .cred identity or /dev/tpmrm0 among the plugins' devices; neither otherwise", () => {
    assert.deepEqual(tpm({ identityPaths: ["/etc/age/host.cred"] }), { agenixd: both, "agenixd-users": both });
    assert.deepEqual(tpm({ pluginDevices: ["/dev/tpmrm0 rw"] }), { agenixd: both, "agenixd-users": both });
    assert.deepEqual(tpm({}), { agenixd: neither, "agenixd-users": neither });
    assert.deepEqual(tpm({ pluginDevices: ["/dev/hidraw0 rw"] }), { agenixd: neither, "agenixd-users": neither });
  });

  test("early, with a sealed identity, after tpm2.target (which waits for dev-tpmrm0.device): no cycle in the boot transaction", () => {
    const identityPaths = ["/etc/age/host.cred", "/etc/ssh/ssh_host_ed25519_key"];
    assert.equal(orderOf({ fileSystems, identityPaths }).early, true);
    assert.match(unitOf({ ...base, identityPaths, early: true }).unitFiles["agenixd.service"]!, /^After=systemd-remount-fs\.service tpm2\.target$/m);
    const out = verifyBoot({ identityPaths, early: true });
    assert.deepEqual(out.split("\n").filter((l) => /ordering cycle|deleted to break/.test(l)), [], out);
  });
});

describe("age-plugin-yubikey: the deferred run after pcscd.socket", nix, () => {
  const cycles = (out: string) => out.split("\n").filter((l) => /ordering cycle|deleted to break/.test(l));
  const pcscd = { deferUntil: ["pcscd.socket"], deferredMarker: "/run/agenix.d/.deferred" };
  const wants: [string, string][] = [["sockets.target", "pcscd.socket"], ["multi-user.target", "wireguard-wg0.service"], ["sysinit.target", "early-net.service"]];

  test("unit.nix: agenixd-deferred.service only with a socket to wait for; after it and agenixd.service, on the marker, before each consumer once, but not the early ones", () => {
    assert.equal("agenixd-deferred" in unitOf(base).services, false);
    const r = unitOf({ ...base, early: true, ...pcscd, consumerUnits: ["wireguard-wg0.service", "early-net.service", "wireguard-wg0.service"], earlyConsumers: ["early-net.service"] });
    const text = r.unitFiles["agenixd-deferred.service"]!;
    assert.match(text, /^After=agenixd\.service pcscd\.socket$/m);
    assert.match(text, /^Wants=pcscd\.socket$/m);
    assert.match(text, /^Before=shutdown\.target wireguard-wg0\.service$/m);
    assert.match(text, /^ConditionPathExists=\/run\/agenix\.d\/\.deferred$/m);
    assert.equal(r.unitFiles["agenixd-deferred.service"]!.match(/^ExecStart=.*$/m)![0], r.unitFiles["agenixd.service"]!.match(/^ExecStart=.*$/m)![0]);
    assert.deepEqual(r.services["agenixd-deferred"]!.wantedBy, ["pcscd.socket", "multi-user.target"]);
  });

  test("systemd-analyze verify multi-user.target: early agenixd.service, pcscd.socket after sysinit.target, the deferred run between it and the consumer, no cycle", () => {
    const out = verifyBoot({ early: true, ...pcscd, consumerUnits: ["wireguard-wg0.service", "early-net.service"], earlyConsumers: ["early-net.service"] }, "multi-user.target", PCSCD_UNITS, wants);
    assert.deepEqual(cycles(out), [], out);
  });

  test("why the module leaves out units without default dependencies: before an early unit, the deferred run would close a cycle through sysinit.target", () => {
    const out = verifyBoot({ early: true, ...pcscd, consumerUnits: ["wireguard-wg0.service", "early-net.service"] }, "multi-user.target", PCSCD_UNITS, wants);
    assert.match(out, /Found ordering cycle/, out);
    assert.match(out, /agenixd-deferred\.service/, out);
  });
});
