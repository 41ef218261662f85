// The boot harness's switch-to-configuration (harness/switch.ts) decides what to stop, restart,
// reload, start or leave alone as switch-to-configuration-ng does; these are the cases agenixd's
// units meet, on unit texts as nix/unit-file.nix renders them.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { addActivationRequests, compareUnits, parseUnitText, planSwitch, unitBool, type ActiveUnit, type Configurations, type UnitInfo } from "../harness/switch.js";

const agenixd = (manifest: string, extra = "") => `[Unit]
After=local-fs.target
Description=Install agenix secrets
PartOf=sysinit-reactivation.target

[Service]
Environment="AGENIXD_MOUNT=/usr/bin/mount"
${extra}ExecStart=/opt/agenixd/bin/agenixd activate --manifest ${manifest}
RemainAfterExit=true
Type=notify

[Install]
WantedBy=sysinit.target
`;

function configurations(current: Record<string, string>, next: Record<string, string>): Configurations {
  const read = (files: Record<string, string>) => (unit: string): UnitInfo | undefined => (unit in files ? parseUnitText(files[unit]!) : undefined);
  return { current: read(current), next: read(next) };
}

const active = (...ids: string[]): ActiveUnit[] => ids.map((id) => ({ id, state: "active" }));
const sorted = (s: Set<string>) => [...s].sort();

describe("parseUnitText", () => {
  test("skips [Install], appends repeated keys, and an empty value clears what came before", () => {
    const info = parseUnitText("[Unit]\nAfter=a\nAfter=b\n# comment\n[Service]\nExecStart=/x\nExecStart=\nExecStart=/y\n[Install]\nWantedBy=z\n");
    assert.deepEqual([...info.keys()], ["Unit", "Service"]);
    assert.deepEqual(info.get("Unit")!.get("After"), ["a", "b"]);
    assert.deepEqual(info.get("Service")!.get("ExecStart"), ["/y"]);
  });

  test("a drop-in extends the unit, or resets a key with an empty value", () => {
    const info = parseUnitText("[Unit]\nConditionNeedsUpdate=/etc\nBefore=a\n");
    parseUnitText("[Unit]\nConditionNeedsUpdate=\nBefore=b\n", info);
    assert.deepEqual(info.get("Unit")!.get("ConditionNeedsUpdate"), []);
    assert.deepEqual(info.get("Unit")!.get("Before"), ["a", "b"]);
  });

  test("booleans as systemd spells them, with a default when unset", () => {
    const info = parseUnitText("[Service]\nX-RestartIfChanged=false\nX-StopIfChanged=yes\n");
    assert.equal(unitBool(info, "Service", "X-RestartIfChanged", true), false);
    assert.equal(unitBool(info, "Service", "X-StopIfChanged", false), true);
    assert.equal(unitBool(info, "Service", "X-ReloadIfChanged", false), false);
  });
});

describe("compareUnits", () => {
  const cmp = (a: string, b: string) => compareUnits(parseUnitText(a), parseUnitText(b));
  test("equal when only [Install] or an ignored [Unit] key differs", () => {
    assert.equal(cmp("[Unit]\nDescription=a\n[Install]\nWantedBy=x\n", "[Unit]\nDescription=b\n"), "equal");
  });
  test("restart when a [Service] key changes, appears or disappears", () => {
    assert.equal(cmp("[Service]\nExecStart=/a\n", "[Service]\nExecStart=/b\n"), "restart");
    assert.equal(cmp("[Service]\nExecStart=/a\n", "[Service]\nExecStart=/a\nUMask=0077\n"), "restart");
    assert.equal(cmp("[Service]\nExecStart=/a\nUMask=0077\n", "[Service]\nExecStart=/a\n"), "restart");
  });
  test("reload when only X-Reload-Triggers changes", () => {
    assert.equal(cmp("[Unit]\nX-Reload-Triggers=/a\n[Service]\nExecStart=/a\n", "[Unit]\nX-Reload-Triggers=/b\n[Service]\nExecStart=/a\n"), "reload");
  });
});

describe("planSwitch", () => {
  test("agenixd with a new manifest and X-RestartIfChanged=false: left to sysinit-reactivation.target (skipped)", () => {
    const cfg = configurations(
      { "agenixd.service": agenixd("/m1", "X-RestartIfChanged=false\n"), "sysinit.target": "[Unit]\n" },
      { "agenixd.service": agenixd("/m2", "X-RestartIfChanged=false\n"), "sysinit.target": "[Unit]\n" },
    );
    const plan = planSwitch(active("agenixd.service", "sysinit.target"), cfg);
    assert.deepEqual(sorted(plan.skip), ["agenixd.service"]);
    assert.deepEqual(sorted(plan.restart), []);
    assert.deepEqual(sorted(plan.stop), []);
    assert.deepEqual(sorted(plan.start), ["sysinit.target"], "every active target is started");
  });

  test("the old unit (X-StopIfChanged=false, restarted when changed): restarted a second time after the target", () => {
    const cfg = configurations({ "agenixd.service": agenixd("/m1", "X-StopIfChanged=false\n") }, { "agenixd.service": agenixd("/m2", "X-StopIfChanged=false\n") });
    const plan = planSwitch(active("agenixd.service"), cfg);
    assert.deepEqual(sorted(plan.restart), ["agenixd.service"]);
  });

  test("a changed service by default is stopped before activation and started after", () => {
    const cfg = configurations({ "app.service": "[Service]\nExecStart=/a\n" }, { "app.service": "[Service]\nExecStart=/b\n" });
    const plan = planSwitch(active("app.service"), cfg);
    assert.deepEqual(sorted(plan.stop), ["app.service"]);
    assert.deepEqual(sorted(plan.start), ["app.service"]);
  });

  test("a socket-activated service: its socket is stopped and started instead", () => {
    const socket = "[Socket]\nListenStream=/run/app.sock\n";
    const cfg = configurations({ "app.service": "[Service]\nExecStart=/a\n", "app.socket": socket }, { "app.service": "[Service]\nExecStart=/b\n", "app.socket": socket });
    const plan = planSwitch(active("app.service", "app.socket"), cfg);
    assert.deepEqual(sorted(plan.stop), ["app.service", "app.socket"]);
    assert.deepEqual(sorted(plan.start), ["app.socket"]);
  });

  test("unchanged units are left alone; removed ones stopped; inactive, failed and unknown ones ignored", () => {
    const same = agenixd("/m1", "X-RestartIfChanged=false\n");
    const cfg = configurations(
      { "agenixd.service": same, "agenixd-users.service": same, "old.service": "[Service]\nExecStart=/a\n", "failed.service": "[Service]\nExecStart=/a\n" },
      { "agenixd.service": same, "failed.service": "[Service]\nExecStart=/b\n" },
    );
    const plan = planSwitch(
      [...active("agenixd.service", "agenixd-users.service", "old.service", "debian.service"), { id: "failed.service", state: "failed" }],
      cfg,
    );
    assert.deepEqual(sorted(plan.stop), ["agenixd-users.service", "old.service"]);
    for (const set of [plan.skip, plan.restart, plan.reload, plan.start]) assert.deepEqual(sorted(set), []);
  });

  test("X-StopOnRemoval=false keeps a removed unit running", () => {
    const cfg = configurations({ "keep.service": "[Unit]\nX-StopOnRemoval=false\n[Service]\nExecStart=/a\n" }, {});
    assert.deepEqual(sorted(planSwitch(active("keep.service"), cfg).stop), []);
  });

  test("targets: started unless they refuse it; stopped first with X-StopOnReconfiguration", () => {
    const cfg = configurations(
      { "a.target": "[Unit]\n", "b.target": "[Unit]\nRefuseManualStart=true\n", "c.target": "[Unit]\n", "suspend.target": "[Unit]\n" },
      { "a.target": "[Unit]\n", "b.target": "[Unit]\nRefuseManualStart=true\n", "c.target": "[Unit]\nX-StopOnReconfiguration=true\n", "suspend.target": "[Unit]\n" },
    );
    const plan = planSwitch(active("a.target", "b.target", "c.target", "suspend.target"), cfg);
    assert.deepEqual(sorted(plan.start), ["a.target", "c.target"]);
    assert.deepEqual(sorted(plan.stop), ["c.target"]);
  });

  test("X-ReloadIfChanged reloads; a changed reload trigger alone reloads; RefuseManualStop skips", () => {
    const cfg = configurations(
      {
        "r.service": "[Service]\nX-ReloadIfChanged=true\nExecStart=/a\n",
        "t.service": "[Unit]\nX-Reload-Triggers=/1\n[Service]\nExecStart=/a\n",
        "m.service": "[Unit]\nRefuseManualStop=true\n[Service]\nExecStart=/a\n",
      },
      {
        "r.service": "[Service]\nX-ReloadIfChanged=true\nExecStart=/b\n",
        "t.service": "[Unit]\nX-Reload-Triggers=/2\n[Service]\nExecStart=/a\n",
        "m.service": "[Unit]\nRefuseManualStop=true\n[Service]\nExecStart=/b\n",
      },
    );
    const plan = planSwitch(active("r.service", "t.service", "m.service"), cfg);
    assert.deepEqual(sorted(plan.reload), ["r.service", "t.service"]);
    assert.deepEqual(sorted(plan.skip), ["m.service"]);
  });

  test("a template instance is compared through its template", () => {
    const cfg = configurations({ "getty@.service": "[Service]\nExecStart=/a %I\n" }, { "getty@.service": "[Service]\nExecStart=/b %I\n" });
    const plan = planSwitch(active("getty@tty1.service"), cfg);
    assert.deepEqual(sorted(plan.stop), ["getty@tty1.service"]);
  });
});

describe("addActivationRequests (the dry-activation lists)", () => {
  const service = (extra = "") => `[Unit]\nDescription=x\n[Service]\n${extra}ExecStart=/bin/x\n`;
  const cfg = configurations(
    {},
    { "app.service": service(), "hot.service": service("X-StopIfChanged=false\n"), "web.service": service("X-ReloadIfChanged=true\n"), "pinned.service": service("X-RestartIfChanged=false\n") },
  );
  const empty = () => ({ stop: new Set<string>(), skip: new Set<string>(), reload: new Set<string>(), restart: new Set<string>(), start: new Set<string>(), quiet: new Set<string>() });

  test("as s-t-c-ng: an inactive unit would start; an active one is a changed unit (stop and start, restart, reload, skip)", () => {
    const plan = empty();
    addActivationRequests(plan, ["app.service", "hot.service", "web.service", "pinned.service", "idle.service", "app.service"], [], active("app.service", "hot.service", "web.service", "pinned.service"), cfg);
    assert.deepEqual(sorted(plan.stop), ["app.service"]);
    assert.deepEqual(sorted(plan.start), ["app.service", "idle.service"]);
    assert.deepEqual(sorted(plan.restart), ["hot.service"]);
    assert.deepEqual(sorted(plan.reload), ["web.service"]);
    assert.deepEqual(sorted(plan.skip), ["pinned.service"]);
  });

  test("a unit to reload: only when active, and not when it is restarted or stopped anyway", () => {
    const plan = empty();
    addActivationRequests(plan, ["app.service", "hot.service"], ["app.service", "hot.service", "web.service", "idle.service"], active("app.service", "hot.service", "web.service"), cfg);
    assert.deepEqual(sorted(plan.reload), ["web.service"]);
  });
});
