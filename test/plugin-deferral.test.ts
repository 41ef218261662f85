// Secrets deferred until a plugin's socket is there (docs/plugins.md): age-plugin-yubikey reaches
// the card through pcscd, whose socket listens only after sysinit.target, which agenixd.service
// runs before. The manifest's pluginSockets names such plugins; while the socket is missing the
// plugin is not run, the secrets only it opens are deferred (not failed: the unit succeeds, the
// previous value stays), a marker tells agenixd-deferred.service to run, and once the socket
// listens the same activation installs them.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { decryptAll } from "../src/decrypt-all.js";
import { loadIdentities } from "../src/identities.js";
import { parseManifest } from "../src/manifest.js";
import { DEFERRED_MARKER, readState } from "../src/state.js";
import { ageEncrypt, generateAgeKey } from "./helpers/age-cli.js";
import { installTestPlugin, pluginKey } from "./helpers/age-plugins.js";
import { Sandbox } from "./helpers/sandbox.js";
import { secretSpec } from "./helpers/secret-spec.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "agenixd-deferral-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((c) => c.end());
    server.once("error", reject);
    server.listen(path, () => resolve(server));
  });
}

test("while the socket is missing the plugin is not run: its secrets wait for the unit, a native key still opens what it can; once it listens, the plugin opens them", async () => {
  const bin = join(dir, "bin");
  const count = join(dir, "starts");
  const socket = join(dir, "pcscd.comm");
  installTestPlugin(bin, "card", `socket=${socket}`, count);
  const card = pluginKey(dir, "card");
  const native = generateAgeKey(dir, "native.key");
  const write = (name: string, recipients: string[]) => {
    const f = join(dir, `${name}.age`);
    writeFileSync(f, ageEncrypt(`value of ${name}`, recipients));
    return secretSpec(name, f);
  };
  const secrets = [write("card-only", [card.recipient]), write("both", [card.recipient, native.recipient]), write("native-only", [native.recipient])];
  const sockets = [{ plugin: "card", socket, unit: "pcscd.socket" }];
  const decrypt = async () => {
    const ids = await loadIdentities([card.identityPath, native.privatePath], () => {}, undefined, 0, [bin]);
    return decryptAll(secrets, ids, undefined, undefined, { sockets });
  };

  const early = await decrypt();
  assert.equal(existsSync(count), false, "the plugin was not started");
  const [cardOnly, both, nativeOnly] = early;
  assert.ok(!cardOnly!.ok);
  assert.equal(cardOnly!.waitsFor, "pcscd.socket");
  assert.match(cardOnly!.cause, new RegExp(`^age plugin card \\(identity .*\\) waits for pcscd\\.socket: ${socket.replaceAll(".", "\\.")} is not there yet$`));
  assert.ok(both!.ok && both!.plaintext.toString() === "value of both");
  assert.ok(nativeOnly!.ok);

  // A file where the socket should be is not the socket.
  writeFileSync(socket, "");
  assert.equal(((await decrypt())[0] as { waitsFor?: string }).waitsFor, "pcscd.socket");
  rmSync(socket);

  const server = await listen(socket);
  try {
    const late = await decrypt();
    assert.deepEqual(late.map((r) => (r.ok ? r.plaintext.toString() : r.cause)), ["value of card-only", "value of both", "value of native-only"]);
    assert.equal(readFileSync(count, "utf8").trim().split("\n").length, 1, "one plugin process");
  } finally {
    server.close();
  }
});

test("a plugin failure with its socket there is a failure, not a deferral", async () => {
  const bin = join(dir, "pin-bin");
  const socket = join(dir, "pin.comm");
  installTestPlugin(bin, "pin", "pin");
  const key = pluginKey(dir, "pin");
  const f = join(dir, "pin.age");
  writeFileSync(f, ageEncrypt("x", [key.recipient]));
  const server = await listen(socket);
  try {
    const ids = await loadIdentities([key.identityPath], () => {}, undefined, 0, [bin]);
    const [r] = await decryptAll([secretSpec("pin", f)], ids, undefined, undefined, { sockets: [{ plugin: "pin", socket, unit: "pcscd.socket" }] });
    assert.ok(!r!.ok);
    assert.equal(r!.waitsFor, undefined);
    assert.match(r!.cause, /PIN required/);
  } finally {
    server.close();
  }
});

test("an activation at early boot defers (exit 0, marker, status), and the run after the socket installs the secret and its template, removing the marker", async () => {
  const sb = new Sandbox("deferral");
  try {
    const bin = join(sb.root, "plugin-bin");
    const socketDir = join(sb.root, "pcscd");
    mkdirSync(socketDir);
    const socket = join(socketDir, "pcscd.comm");
    installTestPlugin(bin, "card", `socket=${socket}`);
    const card = pluginKey(sb.root, "card");
    const manifest = sb.manifest(
      [
        { name: "wg-key", file: sb.encrypt("wg from the card", [card.recipient]), restartUnits: ["wg.service"] },
        { name: "host", plaintext: "host value" },
      ],
      { identityPaths: [card.identityPath, sb.hostKey.privatePath], pluginDirs: [bin], pluginSockets: [{ plugin: "card", socket, unit: "pcscd.socket" }] },
      [{ name: "wg.conf", content: "" }],
    );
    // The template uses the deferred secret: its text is the secret's placeholder, from the manifest.
    const json = JSON.parse(readFileSync(manifest, "utf8"));
    writeFileSync(json.templates[0].file, `PrivateKey = ${json.secrets[0].placeholder}\n`);

    const early = sb.run(manifest);
    assert.equal(early.status, 0, early.stderr);
    assert.equal(sb.read("host"), "host value");
    assert.equal(existsSync(join(sb.secretsDir, "wg-key")), false);
    assert.ok(early.logs.some((l) => l.msg === "secret deferred until pcscd.socket" && l.secret === "wg-key"), early.stderr);
    assert.ok(early.logs.some((l) => l.msg === "template deferred until pcscd.socket" && l.template === "wg.conf"), early.stderr);
    assert.equal(early.logs.some((l) => l.level === 50), false, "nothing logged as an error");
    assert.equal(readFileSync(join(sb.mountPoint, DEFERRED_MARKER), "utf8"), "pcscd.socket\n");
    const state = readState(sb.mountPoint)!;
    assert.deepEqual(state.failures.map((f) => [f.subject ?? "secret", f.name, f.waitsFor]), [["secret", "wg-key", "pcscd.socket"], ["template", "wg.conf", "pcscd.socket"]]);

    const server = await listen(socket);
    try {
      const late = sb.run(manifest);
      assert.equal(late.status, 0, late.stderr);
      assert.equal(sb.read("wg-key"), "wg from the card");
      assert.equal(sb.read("rendered/wg.conf"), "PrivateKey = wg from the card\n");
      assert.equal(existsSync(join(sb.mountPoint, DEFERRED_MARKER)), false);
      assert.deepEqual(readState(sb.mountPoint)!.failures, []);
    } finally {
      server.close();
    }
  } finally {
    sb.cleanup();
  }
});

test("a secret that fails for another reason beside a deferred one still fails the run", () => {
  const sb = new Sandbox("deferral-mixed");
  try {
    const bin = join(sb.root, "plugin-bin");
    installTestPlugin(bin, "card", "normal");
    const card = pluginKey(sb.root, "card");
    const manifest = sb.manifest(
      [
        { name: "on-card", file: sb.encrypt("x", [card.recipient]), restartUnits: [] },
        { name: "broken", file: join(sb.root, "missing.age") },
      ],
      { identityPaths: [card.identityPath, sb.hostKey.privatePath], pluginDirs: [bin], pluginSockets: [{ plugin: "card", socket: join(sb.root, "absent.comm"), unit: "pcscd.socket" }] },
    );
    const r = sb.run(manifest);
    assert.equal(r.status, 1, r.stderr);
    assert.ok(r.logs.some((l) => l.msg === "secret deferred until pcscd.socket" && l.secret === "on-card"));
    assert.ok(r.logs.some((l) => l.msg === "secret not installed" && l.secret === "broken"));
  } finally {
    sb.cleanup();
  }
});

test("the manifest's pluginSockets: a plugin's name, an absolute socket path, a socket, service or target unit", () => {
  const base = { version: 2, secretsDir: "/run/agenix", secretsMountPoint: "/run/agenix.d", identityPaths: [], keepGenerations: 1, secrets: [] };
  const ok = parseManifest({ ...base, pluginSockets: [{ plugin: "yubikey", socket: "/run/pcscd/pcscd.comm", unit: "pcscd.socket" }] });
  assert.deepEqual(ok.pluginSockets, [{ plugin: "yubikey", socket: "/run/pcscd/pcscd.comm", unit: "pcscd.socket" }]);
  assert.deepEqual(parseManifest(base).pluginSockets, []);
  const bad: [unknown, RegExp][] = [
    [[{ plugin: "../yubikey", socket: "/run/pcscd/pcscd.comm", unit: "pcscd.socket" }], /pluginSockets\[0\]\.plugin: expected an age plugin's name/],
    [[{ plugin: "yubikey", socket: "run/pcscd.comm", unit: "pcscd.socket" }], /pluginSockets\[0\]\.socket/],
    [[{ plugin: "yubikey", socket: "/run/pcscd/pcscd.comm", unit: "pcscd" }], /pluginSockets\[0\]\.unit: expected a \.socket, \.service or \.target unit name/],
    [[{ plugin: "yubikey", socket: "/run/pcscd/pcscd.comm", unit: "pcscd.socket", extra: 1 }], /pluginSockets\[0\]\.extra/],
    [{ plugin: "yubikey" }, /pluginSockets: expected a list/],
  ];
  for (const [value, message] of bad) assert.throws(() => parseManifest({ ...base, pluginSockets: value }), message);
  assert.throws(() => parseManifest({ ...base, version: 1, pluginSockets: [] }), /pluginSockets/);
});
