// src/exit.ts: the process ends with main()'s status through _exit(2), after the 'exit'
// listeners, with nothing written before it lost; node's own exit where the addon is not loaded
// or node writes something at its end.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const exitModule = new URL("../src/exit.js", import.meta.url).href;
const nativeModule = new URL("../src/native.js", import.meta.url).href;
const errFile = join(mkdtempSync(join(tmpdir(), "agenixd-exit-out-")), "stderr");
const outputModule = new URL("../src/output.js", import.meta.url).href;

/**
 * Runs a module that may load the addon, prints `bytes` to stderr (src/output.ts) and a line to
 * stdout, and ends with exitProcess(status). Its stderr goes to a reader that takes nothing for
 * half a second, far longer than the child needs to fill the pipe and exit.
 */
function run(opts: { loadAddon: boolean; status: number; bytes: number; nodeArgs?: string[] }) {
  const script = `
    import { exitProcess } from ${JSON.stringify(exitModule)};
    import { printErr } from ${JSON.stringify(outputModule)};
    import { loadNativeAddon, loadedNativeAddon } from ${JSON.stringify(nativeModule)};
    if (${opts.loadAddon}) loadNativeAddon(${JSON.stringify(nativeModule)});
    process.on("exit", (code) => process.stdout.write("exit listener " + code + " " + process.exitCode + "\\n"));
    // After the status is known, the teardown a _exit skips would have run this; it never does.
    printErr("x".repeat(${opts.bytes}));
    process.stdout.write("addon " + (loadedNativeAddon() !== undefined) + "\\n");
    exitProcess(${opts.status});
    process.stdout.write("after exitProcess\\n");
  `;
  const node = [process.execPath, ...(opts.nodeArgs ?? []), "--input-type=module", "-e", script].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  // bash: the child's status, its stdout, and the byte count and bytes the slow reader got at the end.
  const r = spawnSync("bash", ["-c", `exec 3>&1; { ${node} 2>&1 >&3 3>&-; echo "status $?" >&3; } | { sleep 0.5; cat > "$ERR_FILE"; }`], {
    encoding: "utf8", maxBuffer: 64 << 20, env: { ...process.env, ERR_FILE: errFile },
  });
  const stderr = readFileSync(errFile, "utf8");
  const m = /status (\d+)\n$/.exec(r.stdout);
  assert.ok(m, `no status in ${r.stdout} (${r.stderr})`);
  return { status: Number(m[1]), stdout: r.stdout.slice(0, m.index), stderr };
}

test("with the addon loaded the process ends with the status, after the exit listeners, and nothing written is lost", () => {
  // 4 MiB through a pipe: far more than a pipe holds (node's process.stderr would drop all past 64 KiB at the exit).
  const r = run({ loadAddon: true, status: 3, bytes: 4 << 20 });
  assert.equal(r.status, 3, r.stderr.slice(0, 500));
  assert.equal(r.stdout, "addon true\nexit listener 3 3\n");
  assert.equal(r.stderr.length, 4 << 20);
  assert.match(r.stderr, /^x+$/);
});

test("status 0 and statuses above 255 as the kernel keeps them", () => {
  assert.equal(run({ loadAddon: true, status: 0, bytes: 1 }).status, 0);
  assert.equal(run({ loadAddon: true, status: 257, bytes: 1 }).status, 1);
});

test("the addon's exit skips node's teardown: a --cpu-prof profile is written only when exitProcess leaves the ending to node", () => {
  const dir = mkdtempSync(join(tmpdir(), "agenixd-exit-"));
  try {
    // exitProcess sees --cpu-prof and lets node end the process, so the profile is written.
    const profiled = run({ loadAddon: true, status: 2, bytes: 1, nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${dir}`] });
    assert.equal(profiled.status, 2);
    assert.equal(profiled.stdout, "addon true\nexit listener 2 2\n");
    assert.equal(readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).length, 1);
    // The addon's _exit itself, called directly: node's teardown (which writes the profile) never runs.
    const addonPath = fileURLToPath(new URL("../../dist/agenixd.node", import.meta.url));
    assert.ok(existsSync(addonPath), `${addonPath}: npm run build makes it`);
    const raw = spawnSync(process.execPath, [`--cpu-prof`, `--cpu-prof-dir=${dir}`, "-e", `const m = { exports: {} }; process.dlopen(m, ${JSON.stringify(addonPath)}); m.exports.exitNow(5)`]);
    assert.equal(raw.status, 5);
    assert.equal(readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).length, 1, "_exit wrote no second profile");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("without the addon, node's own exit with the same status and listeners", () => {
  const r = run({ loadAddon: false, status: 4, bytes: 1 << 20 });
  assert.equal(r.status, 4);
  assert.equal(r.stdout, "addon false\nexit listener 4 4\n");
  assert.equal(r.stderr.length, 1 << 20);
});
