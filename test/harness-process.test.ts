// The harness runs thousands of host-side commands per CI run; one that exits without reading
// its input must not crash the run with an unhandled EPIPE (seen in CI).
import { test } from "node:test";
import assert from "node:assert/strict";
import { run } from "../harness/process.js";

test("run() survives a command that exits before reading its input", async () => {
  for (let i = 0; i < 10; i++) {
    const r = await run(["true"], { input: Buffer.alloc(4 << 20) });
    assert.equal(r.status, 0);
  }
  const echoed = await run(["cat"], { input: "input reaches the command" });
  assert.equal(echoed.stdout, "input reaches the command");
});
