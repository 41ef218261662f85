// What the unit's optional settings cost in `systemd-analyze security` (issue 21: "the hardening
// score must say what it costs"): the unit nix/unit.nix renders, scored offline by Debian's
// systemd 252 (the harness root's), with and without the TPM (age-plugin-tpm's /dev/tpmrm0, a
// sealed identity). docs/hardening.md gives the same numbers.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { nixEval, nixSuite } from "./helpers/nix.js";

const nixDir = join(fileURLToPath(new URL("../../", import.meta.url)), "nix");
const base = { agenixd: "/usr/bin/true", systemctl: "/usr/bin/systemctl", manifest: "/nix/store/m-manifest.json", identityPaths: ["/etc/ssh/ssh_host_ed25519_key"], early: true };

/** The security report of agenixd.service as rendered from `args`: its lines, and the overall exposure. */
function security(args: Record<string, unknown>): { lines: string[]; exposure: number } {
  const text = (nixEval(`import ${nixDir}/unit.nix arg`, { ...base, ...args }) as { unitFiles: Record<string, string> }).unitFiles["agenixd.service"]!;
  const dir = mkdtempSync("/tmp/agenixd-exposure-");
  try {
    writeFileSync(join(dir, "agenixd.service"), text);
    const r = spawnSync("systemd-analyze", ["security", "--offline=true", "--no-pager", join(dir, "agenixd.service")], { encoding: "utf8" });
    if (r.error) throw r.error;
    const overall = /Overall exposure level for agenixd\.service: (\d+\.\d)/.exec(r.stdout);
    assert.ok(overall, r.stdout + r.stderr);
    return { lines: r.stdout.split("\n").filter((l) => /^\s*[✗✓]/.test(l)), exposure: Number(overall[1]) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("exposure score of agenixd.service", nixSuite(), () => {
  test("3.8, as docs/hardening.md says", () => {
    assert.equal(security({}).exposure, 3.8);
  });

  test("the TPM (age-plugin-tpm or a sealed identity) costs nothing in the score: only DeviceAllow= names /dev/tpmrm0 besides the clock", () => {
    const plain = security({});
    for (const tpm of [{ pluginDevices: ["/dev/tpmrm0 rw"] }, { identityPaths: [...base.identityPaths, "/etc/age/host.cred"] }]) {
      const withTpm = security(tpm);
      assert.equal(withTpm.exposure, plain.exposure, JSON.stringify(tpm));
      const changed = withTpm.lines.filter((l) => !plain.lines.includes(l));
      assert.equal(changed.length, 1, changed.join("\n"));
      assert.match(changed[0]!, /DeviceAllow=.*char-rtc:r \/dev\/tpmrm0:rw/);
    }
  });
});
