// `agenixd check --host` (issue 24): whether this host's identities open each secret of a
// manifest, from the headers alone (src/host-check.ts, unlockHeader): the file key unwrapped and
// checked against the header's MAC, no plaintext made, nothing written, nothing mounted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AgeDecryptError, unlockHeader } from "../src/age/index.js";
import { loadIdentities } from "../src/identities.js";
import { parseCommand } from "../src/cli.js";
import { AGENIXD, Sandbox } from "./helpers/sandbox.js";
import { ageEncrypt, generateAgeKey } from "./helpers/age-cli.js";
import { installTestPlugin, pluginKey } from "./helpers/age-plugins.js";
import { launchEnv } from "../scripts/launch.js";

const STRANGER = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

function agenixd(args: string[], extraEnv: Record<string, string> = {}) {
  return spawnSync(process.execPath, [...AGENIXD, ...args], { encoding: "utf8", env: launchEnv({ ...process.env, NOTIFY_SOCKET: "", ...extraEnv }) });
}

/** A copy of `file` with one byte of its header MAC changed: the key still unwraps, the MAC no longer matches. */
function withBadMac(sb: Sandbox, file: string): string {
  const data = readFileSync(file);
  const macLine = data.indexOf("\n--- ") + 5;
  data[macLine] = data[macLine] === 0x41 ? 0x42 : 0x41;
  const out = join(sb.store, "bad-mac.age");
  writeFileSync(out, data);
  return out;
}

test("unlockHeader: resolves for the right key, without a payload read; refuses a wrong key and a forged header MAC", async () => {
  const sb = new Sandbox("unlock");
  try {
    const [identity] = await loadIdentities([sb.hostKey.privatePath], () => {});
    const good = readFileSync(sb.encrypt("hello"));
    assert.equal(await unlockHeader(good, [identity!]), undefined);
    // A payload cut off entirely: the header alone still opens (decryptAge would fail).
    const headerOnly = good.subarray(0, good.indexOf("\n--- ") + 5 + 43 + 1);
    assert.equal(await unlockHeader(headerOnly, [identity!]), undefined);
    await assert.rejects(unlockHeader(readFileSync(sb.encrypt("x", [STRANGER])), [identity!]), (e: Error) => e instanceof AgeDecryptError && /no identity matches any recipient/.test(e.message));
    await assert.rejects(unlockHeader(readFileSync(withBadMac(sb, sb.encrypt("y"))), [identity!]), AgeDecryptError);
  } finally {
    sb.cleanup();
  }
});

test("check --host: each secret ok or FAIL with its cause, exit 1, and nothing written or mounted", (t) => {
  const sb = new Sandbox("host-check");
  t.after(() => sb.cleanup());
  const manifest = sb.manifest([
    { name: "a", plaintext: "A-SECRET-VALUE" },
    { name: "stranger", file: sb.encrypt("s", [STRANGER]) },
    { name: "missing", file: join(sb.store, "nope.age") },
    { name: "forged", file: withBadMac(sb, sb.encrypt("f")) },
  ]);
  const mounts = readFileSync("/proc/self/mountinfo", "utf8");
  const r = agenixd(["check", "--host", "--manifest", manifest]);
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stdout.split("\n");
  assert.equal(lines[0], `1 of 4 secrets of ${manifest} open with this host's identities (headers only: nothing decrypted, nothing written)`);
  assert.equal(lines[1], "ok    a");
  assert.match(lines[2]!, /^FAIL {2}stranger \(.*\): no identity matches any recipient \(file is for: X25519\)$/);
  assert.match(lines[3]!, /^FAIL {2}missing \(.*nope\.age\): encrypted file does not exist$/);
  assert.match(lines[4]!, /^FAIL {2}forged \(.*\): .*MAC/i);
  assert.doesNotMatch(r.stdout + r.stderr, /A-SECRET-VALUE/);
  assert.equal(existsSync(sb.mountPoint) || existsSync(sb.secretsDir), false, "nothing made");
  assert.equal(readFileSync("/proc/self/mountinfo", "utf8"), mounts, "nothing mounted");

  const json = agenixd(["check", "--host", "--manifest", manifest, "--json"]);
  assert.equal(json.status, 1);
  const report = JSON.parse(json.stdout) as { manifest: string; ok: boolean; secrets: { name: string; ok: boolean; cause?: string }[] };
  assert.equal(report.manifest, manifest);
  assert.equal(report.ok, false);
  assert.deepEqual(report.secrets.map((s) => [s.name, s.ok]), [["a", true], ["stranger", false], ["missing", false], ["forged", false]]);
});

test("check --host: every secret opens (an age identity too, and a skipped identity file is a warning): exit 0", (t) => {
  const sb = new Sandbox("host-check-ok");
  t.after(() => sb.cleanup());
  const age = generateAgeKey(sb.root);
  const file = join(sb.store, "to-age.age");
  writeFileSync(file, ageEncrypt("via age key", [age.recipient], { armor: true }));
  const manifestFile = sb.manifest([{ name: "ssh", plaintext: "1" }, { name: "native", file }]);
  const manifest = JSON.parse(readFileSync(manifestFile, "utf8"));
  manifest.identityPaths = [join(sb.root, "absent-key"), ...manifest.identityPaths, age.privatePath];
  writeFileSync(manifestFile, JSON.stringify(manifest));
  const r = agenixd(["check", "--host", "--manifest", manifestFile]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^2 of 2 secrets .*\nwarning: identity .*absent-key skipped: .*\nok {4}ssh\nok {4}native\n$/);
});

test("check --host with an age plugin identity: one plugin process for all files; one that wants a PIN fails only its secrets, with its message", (t) => {
  const sb = new Sandbox("host-check-plugin");
  t.after(() => sb.cleanup());
  const plug = pluginKey(sb.root, "hc");
  const starts = join(sb.root, "plugin-starts");
  const write = (mode: string) => {
    const bin = join(sb.root, `bin-${mode}`);
    installTestPlugin(bin, "hc", mode, starts);
    const file = (name: string, plaintext: string) => {
      const path = join(sb.store, `${name}.age`);
      writeFileSync(path, ageEncrypt(plaintext, [plug.recipient]));
      return path;
    };
    const manifestFile = sb.manifest([{ name: "via-plugin-1", file: file("p1", "one") }, { name: "via-plugin-2", file: file("p2", "two") }, { name: "host-key", plaintext: "three" }]);
    const m = JSON.parse(readFileSync(manifestFile, "utf8"));
    writeFileSync(manifestFile, JSON.stringify({ ...m, version: 2, identityPaths: [plug.identityPath, ...m.identityPaths], pluginDirs: [bin], secrets: m.secrets.map((x: object) => ({ ...x, restartUnits: [], reloadUnits: [] })) }));
    return manifestFile;
  };
  const ok = agenixd(["check", "--host", "--manifest", write("normal")]);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /^3 of 3 secrets .*\nok {4}via-plugin-1\nok {4}via-plugin-2\nok {4}host-key\n$/);
  assert.equal(readFileSync(starts, "utf8").trim().split("\n").length, 1, "one plugin process for both files");

  const pin = agenixd(["check", "--host", "--manifest", write("pin")]);
  assert.equal(pin.status, 1, pin.stdout + pin.stderr);
  assert.match(pin.stdout, /^1 of 3 secrets /);
  assert.match(pin.stdout, /^FAIL {2}via-plugin-1 \(.*\): .*PIN required/m);
  assert.match(pin.stdout, /^ok {4}host-key$/m);
});

test("check --host without --manifest takes the one the live generation recorded (in a /run of its own)", (t) => {
  const sb = new Sandbox("host-check-default");
  t.after(() => sb.cleanup());
  const manifestFile = sb.manifest([{ name: "a", plaintext: "1" }]);
  const m = JSON.parse(readFileSync(manifestFile, "utf8"));
  writeFileSync(manifestFile, JSON.stringify({ ...m, secretsDir: "/run/agenix", secretsMountPoint: "/run/agenix.d" }));
  const entry = AGENIXD.map((a) => JSON.stringify(a)).join(" ");
  const script = `mount -t tmpfs tmpfs /run && "$0" ${entry} activate --manifest ${manifestFile} 2>/dev/null && "$0" ${entry} check --host`;
  const r = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", script, process.execPath], { encoding: "utf8", env: launchEnv({ ...process.env, NOTIFY_SOCKET: "" }) });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `1 of 1 secrets of ${manifestFile} open with this host's identities (headers only: nothing decrypted, nothing written)\nok    a\n`);
  const none = spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c", `mount -t tmpfs tmpfs /run && "$0" ${entry} check --host`, process.execPath], { encoding: "utf8", env: launchEnv({ ...process.env, NOTIFY_SOCKET: "" }) });
  assert.equal(none.status, 2);
  assert.match(none.stderr, /no --manifest given, and \/run\/agenix\.d records no activation to take it from/);
});

test("check --host: usage", () => {
  assert.deepEqual(parseCommand(["check", "--host"]), { kind: "check-host", json: false });
  assert.deepEqual(parseCommand(["check", "--host", "--manifest", "/m.json", "--json"]), { kind: "check-host", manifest: "/m.json", json: true });
  assert.deepEqual(parseCommand(["check", "--host", "-r", "age1x"]), { kind: "usage", error: "check --host takes the host's own identities: no --recipient" });
  assert.deepEqual(parseCommand(["check", "--host", "a.age"]), { kind: "usage", error: "check --host checks a manifest's secrets: no FILE arguments (use --manifest)" });
  assert.deepEqual(parseCommand(["check", "--manifest", "/m.json", "-r", "age1x", "a.age"]), { kind: "usage", error: "check: --manifest goes with --host" });
});
