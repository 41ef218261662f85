// How early agenixd.service runs at boot (issue 19, nix/boot-order.nix and nix/unit.nix): before
// cryptsetup-pre.target, zfs-import.target and network-pre.target when every input is on a file
// system the initrd mounts, after local-fs.target with a warning naming the option otherwise, and
// the userborn ordering cycle called out. Evaluated with Debian's nix-instantiate.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
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
  nixEval(`import ${nixDir}/unit.nix arg`, args) as { services: Record<string, { after: string[]; before: string[]; unitConfig: { RequiresMountsFor: string[] } }>; unitFiles: Record<string, string> };

const fileSystems = {
  "/": { mountPoint: "/" },
  "/nix": { mountPoint: "/nix" },
  "/var": { mountPoint: "/var" },
  "/persist": { mountPoint: "/persist" },
  "/state": { mountPoint: "/state", neededForBoot: true },
  "/persist/deep": { mountPoint: "/persist/deep", neededForBoot: true },
};
const base = { agenixd: "/nix/store/x-agenixd/bin/agenixd", mount: "/nix/store/u/bin/mount", manifest: "/nix/store/m-manifest.json", identityPaths: ["/etc/ssh/ssh_host_ed25519_key"] };

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
