// On a terminal the log is a short readable line per record; elsewhere (the journal) pino JSON.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ENTRIES, type Entry, Sandbox } from "./helpers/sandbox.js";

for (const entry of Object.keys(ENTRIES) as Entry[]) test(`logs read as lines on a terminal and as JSON elsewhere, without secret bytes in either (${entry})`, (t) => {
  const sb = new Sandbox(`log-${entry}`);
  t.after(() => sb.cleanup());
  const manifest = sb.manifest([{ name: "a", plaintext: "TTY-SECRET-1" }, { name: "b", plaintext: "TTY-SECRET-2", owner: "no-such-user-agx" }]);
  // script(1) gives the process a pseudo-terminal, as an admin running it by hand has.
  const tty = spawnSync("script", ["-qec", `${process.execPath} ${ENTRIES[entry].join(" ")} activate --manifest ${manifest}`, "/dev/null"], {
    encoding: "utf8",
    env: { ...process.env, NOTIFY_SOCKET: "" },
  });
  assert.equal(tty.status, 1, tty.stdout);
  const lines = tty.stdout.replace(/\x1b\[[0-9;]*m/g, "").trim().split(/\r?\n/);
  assert.ok(lines.some((l) => /^\d\d:\d\d:\d\d ERROR secret not installed .*secret=b .*cause=unknown owner "no-such-user-agx"/.test(l)), lines.join("\n"));
  assert.ok(lines.some((l) => /^\d\d:\d\d:\d\d INFO  generation 1 is active .*installed=1/.test(l)), lines.join("\n"));
  assert.ok(!lines.some((l) => l.startsWith("{")), "no JSON on a terminal");
  assert.ok(!tty.stdout.includes("TTY-SECRET"));

  const piped = sb.run(sb.manifest([{ name: "a", plaintext: "TTY-SECRET-3" }]), [], ENTRIES[entry]);
  assert.equal(piped.status, 0);
  assert.ok(piped.logs.length > 0 && piped.logs.every((l) => typeof l.level === "string" && typeof l.time === "number"));
  assert.ok(!piped.stderr.includes("TTY-SECRET"));
});

test("the plain bundle logs without node's stdout stream or node:tty", (t) => {
  // node:tty costs a start without the snapshot ~2 ms (it loads node:net), and node's stdout on a
  // pipe or the journal's socket is a net.Socket, which also makes the file description it shares
  // with stderr non-blocking. (Node's own assert module, which sonic-boom and sshpk load, builds
  // the stderr stream for its colours: that one is not agenixd's to avoid.)
  const sb = new Sandbox("log-streams");
  t.after(() => sb.cleanup());
  const report = join(sb.root, "report.json");
  const preload = join(sb.root, "watch.cjs");
  writeFileSync(preload, `
const touched = [];
for (const name of ["stdout", "stderr"]) {
  const d = Object.getOwnPropertyDescriptor(process, name);
  Object.defineProperty(process, name, { configurable: true, enumerable: d.enumerable, get() { touched.push(name + "\\n" + new Error().stack); return d.get.call(this); } });
}
process.on("exit", () => require("fs").writeFileSync(${JSON.stringify(report)}, JSON.stringify({ touched, modules: process.moduleLoadList })));
`);
  const r = sb.run(sb.manifest([{ name: "a" }, { name: "b", owner: "no-such-user-agx" }]), [], ["-r", preload, ...ENTRIES.bundle]);
  assert.equal(r.status, 1, r.stderr); // b's owner is unknown: an error record as well as info ones
  assert.ok(r.logs.some((l) => l.level === "error") && r.logs.some((l) => l.level === "info"), r.stderr);
  const { touched, modules } = JSON.parse(readFileSync(report, "utf8")) as { touched: string[]; modules: string[] };
  assert.deepEqual(touched.filter((s) => !/^stderr\n[^]*node:internal\/util\/colors/.test(s)), []);
  assert.ok(modules.includes("NativeModule crypto"), "the report lists the modules loaded");
  assert.deepEqual(modules.filter((m) => m === "NativeModule tty"), []);
});

for (const entry of Object.keys(ENTRIES) as Entry[]) {
  test(`AGENIXD_LOG_LEVEL sets the level of the JSON log (${entry})`, (t) => {
    // The snapshot's JSON logger is built with the blob, at "info"; the start must set its own level.
    const sb = new Sandbox(`log-level-${entry}`);
    t.after(() => sb.cleanup());
    const manifest = sb.manifest([{ name: "a" }]);
    const levels = (level: string) => {
      const before = process.env.AGENIXD_LOG_LEVEL;
      process.env.AGENIXD_LOG_LEVEL = level;
      try {
        const r = sb.run(manifest, [], ENTRIES[entry]);
        assert.equal(r.status, 0, r.stderr);
        return new Set(r.logs.map((l) => l.level));
      } finally {
        if (before === undefined) delete process.env.AGENIXD_LOG_LEVEL;
        else process.env.AGENIXD_LOG_LEVEL = before;
      }
    };
    assert.ok(levels("debug").has("debug"), "debug records at debug");
    assert.deepEqual([...levels("warn")], [], "nothing below warn in a clean activation");
    assert.deepEqual([...levels("info")], ["info"]);
  });
}
