// Age plugin identities (src/age/plugin-*.ts): the test plugin is first shown to conform by Go
// `age` 1.1.1 (a reference plugin client) decrypting through it, then agenixd decrypts the same
// files through it; hostile plugins fail only the secrets that needed them, in bounded time.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { PluginLimits } from "../src/age/plugin-session.js";
import { escapePluginText } from "../src/age/plugin-session.js";
import { decryptAll } from "../src/decrypt-all.js";
import { loadIdentities } from "../src/identities.js";
import type { SecretSpec } from "../src/manifest.js";
import { ageEncrypt, generateAgeKey } from "./helpers/age-cli.js";
import { installTestPlugin, pluginKey } from "./helpers/age-plugins.js";
import { secretSpec } from "./helpers/secret-spec.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "agenixd-plugin-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function encrypted(name: string, plaintext: string, recipients: string[]): string {
  const path = join(dir, `${name}.age`);
  writeFileSync(path, ageEncrypt(plaintext, recipients));
  return path;
}

const FAST: PluginLimits = { timeoutMs: 3000, maxOutputBytes: 1024 * 1024 };

async function run(identityPaths: string[], pluginDirs: string[], secrets: SecretSpec[], limits?: PluginLimits) {
  const warnings: string[] = [];
  const messages: string[] = [];
  const ids = await loadIdentities(identityPaths, (w) => warnings.push(`${w.path}: ${w.reason}`), undefined, 0, pluginDirs);
  const results = await decryptAll(secrets, ids, undefined, undefined, { onMessage: (p, m) => messages.push(`${p}: ${m}`), limits });
  return { warnings, messages, results };
}

test("Go age 1.1.1 decrypts through the test plugin, and agenixd decrypts the same files with one plugin process", async () => {
  const bin = join(dir, "good-bin");
  const count = join(dir, "good.count");
  installTestPlugin(bin, "test", "msg", count);
  const key = pluginKey(dir, "test");
  const files = ["one", "two", "three"].map((n) => encrypted(`good-${n}`, `plaintext ${n}`, [key.recipient]));
  // The reference client: Go age finds age-plugin-test on PATH.
  for (const [i, f] of files.entries()) {
    const out = execFileSync("age", ["-d", "-i", key.identityPath, f], { env: { PATH: `${bin}:/usr/bin:/bin` } });
    assert.equal(out.toString(), `plaintext ${["one", "two", "three"][i]}`);
  }
  writeFileSync(count, "");
  const { warnings, messages, results } = await run([key.identityPath], [bin], files.map((f, i) => secretSpec(`s${i}`, f)));
  assert.deepEqual(warnings, []);
  assert.deepEqual(results.map((r) => (r.ok ? r.plaintext.toString() : r.cause)), ["plaintext one", "plaintext two", "plaintext three"]);
  const starts = readFileSync(count, "utf8").trim().split("\n");
  assert.equal(starts.length, 1, "one plugin process for all three secrets");
  // A minimal environment: PATH of the plugin directories, nothing else.
  // (PWD is the /bin/sh wrapper's own, set from the working directory "/".)
  assert.deepEqual(JSON.parse(starts[0]!.slice(starts[0]!.indexOf(" ") + 1)), { PATH: bin, PWD: "/" });
  assert.deepEqual(messages, ["test: touch your test key"]);
});

test("identities keep identityPaths order: a native key earlier decrypts what it can, the plugin the rest", async () => {
  const bin = join(dir, "order-bin");
  installTestPlugin(bin, "order", "normal");
  const plug = pluginKey(dir, "order");
  const native = generateAgeKey(dir, "native.key");
  const a = encrypted("order-a", "native", [native.recipient]);
  const b = encrypted("order-b", "plugin", [plug.recipient]);
  const { results } = await run([native.privatePath, plug.identityPath], [bin], [secretSpec("a", a), secretSpec("b", b)]);
  assert.deepEqual(results.map((r) => (r.ok ? r.plaintext.toString() : r.cause)), ["native", "plugin"]);
});

test("a plugin identity whose binary is not in age.plugins skips that file with a clear warning", async () => {
  const plug = pluginKey(dir, "absent");
  const { warnings } = await run([plug.identityPath], [join(dir, "empty-bin")], []);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /needs age-plugin-absent, which no package of age\.plugins has/);
});

for (const [mode, cause] of [
  ["hang", /age plugin hang .*did not finish within 3000 ms/],
  ["flood", /age plugin flood .*wrote more than 1048576 bytes/],
  ["garbage", /age plugin garbage .*broke the plugin protocol: it wrote a line that is not a stanza/],
  ["die", /age plugin die .*exited before finishing the exchange; it said: test plugin: dying on purpose/],
  ["huge", /age plugin huge .*(wrote more than 1048576 bytes|file key of the wrong length)/],
  ["pin", /age plugin pin .*identity 0: PIN required/],
] as const) {
  // The plugin's identity before the native key too, as a YubiKey listed before the host key: a
  // failed plugin must not take the host key's secrets with it (the harness's plugin scenario).
  for (const pluginFirst of [false, true]) test(`a plugin that misbehaves (${mode}) fails only the secrets that needed it, in bounded time${pluginFirst ? ", also listed first" : ""}`, async () => {
    const bin = join(dir, `${mode}-${pluginFirst}-bin`);
    installTestPlugin(bin, mode, mode);
    const keys = mkdtempSync(join(dir, `${mode}-keys-`));
    const plug = pluginKey(keys, mode);
    const native = generateAgeKey(keys, "native.key");
    const mine = encrypted(`${mode}-${pluginFirst}-mine`, "needs the plugin", [plug.recipient]);
    const other = encrypted(`${mode}-${pluginFirst}-other`, "native", [native.recipient]);
    const started = performance.now();
    const identityPaths = pluginFirst ? [plug.identityPath, native.privatePath] : [native.privatePath, plug.identityPath];
    const { results, messages } = await run(identityPaths, [bin], [secretSpec("mine", mine), secretSpec("other", other)], FAST);
    assert.ok(performance.now() - started < 8000, "bounded in time");
    assert.equal(results[0]!.ok, false);
    assert.match((results[0] as { cause: string }).cause, cause);
    assert.equal(results[1]!.ok && results[1]!.plaintext.toString(), "native");
    if (mode === "pin") {
      // The plugin's own message, logged escaped: the ANSI escape never reaches the log raw.
      assert.ok(messages.some((m) => m.includes("request-secret refused") && m.includes("Enter PIN for test key\\x1b[31m")), messages.join("\n"));
    }
  });
}

test("plugin text is escaped and cut short before it is logged", () => {
  assert.equal(escapePluginText("a\nb\x1b[0m\\"), "a\\x0ab\\x1b[0m\\\\");
  assert.equal(escapePluginText("x".repeat(400)).length, 301);
});

test("an activation through the snapshot-launched binary runs the plugin; a plugin that later dies keeps the previous value", async () => {
  const { Sandbox } = await import("./helpers/sandbox.js");
  const sb = new Sandbox("plugin");
  try {
    const bin = join(sb.root, "plugin-bin");
    installTestPlugin(bin, "boot", "msg");
    const plug = pluginKey(sb.root, "boot");
    const secret = sb.encrypt("from the plugin", [plug.recipient]);
    const manifest = sb.manifest(
      [{ name: "hw", file: secret, restartUnits: [] }, { name: "host", plaintext: "host value" }],
      { identityPaths: [sb.hostKey.privatePath, plug.identityPath], pluginDirs: [bin] },
    );
    const first = sb.run(manifest);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(sb.read("hw"), "from the plugin");
    assert.ok(first.logs.some((l) => l.msg === "age plugin says" && l.plugin === "boot" && l.message === "touch your test key"), first.stderr);

    installTestPlugin(bin, "boot", "die");
    const second = sb.run(manifest);
    assert.equal(sb.read("hw"), "from the plugin", "the previous value is kept");
    assert.equal(sb.read("host"), "host value");
    const failed = second.logs.find((l) => typeof l.cause === "string" && /age plugin boot .*exited before finishing/.test(l.cause));
    assert.ok(failed !== undefined && JSON.stringify(failed).includes("hw"), second.stderr);
  } finally {
    sb.cleanup();
  }
});

test("a plugin that cannot be started fails its secrets with the cause, and the session ends", async () => {
  const bin = join(dir, "noexec-bin");
  const path = installTestPlugin(bin, "noexec", "normal");
  const { chmodSync } = await import("node:fs");
  chmodSync(path, 0o644);
  const plug = pluginKey(dir, "noexec");
  const mine = encrypted("noexec-mine", "x", [plug.recipient]);
  const { results } = await run([plug.identityPath], [bin], [secretSpec("mine", mine)], FAST);
  assert.equal(results[0]!.ok, false);
  assert.match((results[0] as { cause: string }).cause, /age plugin noexec .*could not be started \(EACCES\)/);
});
