// The two interpreters of a scenario's steps, harness/steps.ts (boot harness) and
// vm-tests/steps.py (NixOS test driver), must check the same things: here both run the same steps
// on a machine whose commands answer with canned output, and must pass or fail alike.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { Machine, type Backend, type CommandResult } from "../harness/machine.js";
import type { Step } from "../harness/scenario.js";
import { runSteps } from "../harness/steps.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** Answers every command with `output` (stdout; the switch's report goes to stderr in the harness). */
class CannedBackend implements Backend {
  readonly kind = "canned";
  running = false;
  commands: string[] = [];
  constructor(private readonly output: string, private readonly stream: "stdout" | "stderr" = "stdout") {}
  isRunning() {
    return this.running;
  }
  async boot() {
    this.running = true;
  }
  async execute(command: string): Promise<CommandResult> {
    this.commands.push(command);
    return { status: 0, stdout: this.stream === "stdout" ? this.output : "", stderr: this.stream === "stderr" ? this.output : "" };
  }
  async reboot() {}
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

/** Runs the steps with harness/steps.ts; the error message, or undefined, and the commands run. */
async function harness(steps: Step[], output: string, stream: "stdout" | "stderr" = "stdout") {
  const backend = new CannedBackend(output, stream);
  const machine = new Machine("m", backend);
  let error: string | undefined;
  try {
    await runSteps(machine, steps);
  } catch (e) {
    error = (e as Error).message;
  }
  // The Machine wraps each command as `exec bash -c '<set -euo pipefail; command>'`.
  return { error, commands: backend.commands.map((c) => /set -euo pipefail; (.*)'$/s.exec(c)?.[1]?.replaceAll(`'\\''`, "'") ?? c) };
}

/** Runs the steps with vm-tests/steps.py against a stand-in machine answering `output`. */
function python(steps: Step[], output: string) {
  const program = `
import json, sys
exec(open(sys.argv[1]).read())
class M:
    def __init__(self):
        self.commands = []
    def _run(self, c):
        self.commands.append(c)
        return ${JSON.stringify(output)}
    def execute(self, c, **kw):
        return (0, self._run(c))
    def succeed(self, *cs, **kw):
        return "".join(self._run(c) for c in cs)
    def fail(self, *cs, **kw):
        raise AssertionError("fail() on a machine where everything succeeds")
    def log(self, m):
        pass
m = M()
error = None
try:
    run_steps(m, json.loads(sys.argv[2]))
except AssertionError as e:
    error = str(e)
print(json.dumps({"error": error, "commands": m.commands}))
`;
  const r = spawnSync("python3", ["-c", program, join(root, "vm-tests", "steps.py"), JSON.stringify(steps)], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as { error: string | null; commands: string[] };
}

const report = "dry run: against generation 5 (/run/agenix), nothing written\nwould modify secret a: content\nwould restart: app.service\n";

describe("steps.ts and steps.py agree", () => {
  test("switch with dry-activate: the configuration's switch-to-configuration dry-activate, its output checked", async () => {
    const steps: Step[] = [{ op: "switch", to: "spec", action: "dry-activate", contains: ["would modify secret a: content", "would restart: app.service"] }];
    const h = await harness(steps, report, "stderr");
    const p = python(steps, report);
    assert.equal(h.error, undefined);
    assert.equal(p.error, null);
    assert.deepEqual(h.commands, ["switch-to-configuration 'spec' 'dry-activate'"]);
    assert.deepEqual(p.commands, ["/run/booted-system/specialisation/spec/bin/switch-to-configuration dry-activate 2>&1"]);
  });

  test("a switch whose output lacks a line fails in both, naming the line", async () => {
    const steps: Step[] = [{ op: "switch", to: "base", action: "dry-activate", contains: ["would modify secret a: content", "would reload: web.service"] }];
    const h = await harness(steps, report);
    const p = python(steps, report);
    assert.match(h.error ?? "", /would reload: web\.service/);
    assert.match(p.error ?? "", /would reload: web\.service/);
  });

  test("switch without an action is switch-to-configuration test", async () => {
    const steps: Step[] = [{ op: "switch", to: "base" }];
    assert.deepEqual((await harness(steps, "")).commands, ["switch-to-configuration 'base' 'test'"]);
    assert.deepEqual(python(steps, "").commands, ["/run/booted-system/bin/switch-to-configuration test 2>&1"]);
  });

  test("succeed's contains: one string or a list, each required", async () => {
    for (const [contains, ok] of [["would modify", true], [["would modify", "would restart"], true], [["would modify", "nothing like it"], false]] as const) {
      const steps: Step[] = [{ op: "succeed", command: "true", contains: contains as string | string[] }];
      const h = await harness(steps, report);
      const p = python(steps, report);
      assert.equal(h.error === undefined, ok, `harness, ${JSON.stringify(contains)}: ${h.error}`);
      assert.equal(p.error === null, ok, `steps.py, ${JSON.stringify(contains)}: ${p.error}`);
    }
  });
});
