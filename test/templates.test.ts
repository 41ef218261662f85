// Templates (issue 15): rendering (one pass, binary-safe, trim, never re-scanning a value), then
// end to end as root on a real ramfs: the rendered file's content, owner and mode, restarts on
// change, the previous rendering kept when a secret fails, no plaintext in a log, dry run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { renderTemplate, renderTemplates, substitutionsFor, trimOneNewline, type Substitution } from "../src/templates.js";
import { parseManifest } from "../src/manifest.js";
import { AGENIXD, Sandbox, placeholder, withUser, type SecretInput, type TemplateInput, treeHash, fakeSystemctl } from "./helpers/sandbox.js";
import { launchEnv } from "../scripts/launch.js";

const A = "<agenixd:aaaa:placeholder>";
const B = "<agenixd:bbbb:placeholder>";
const sub = (secret: string, ph: string, value: string | Buffer | undefined): Substitution => ({
  secret,
  placeholder: Buffer.from(ph),
  value: value === undefined ? undefined : Buffer.from(value),
});
const subs = [sub("a", A, "alpha"), sub("b", B, "beta")];

function render(text: string | Buffer, with_: readonly Substitution[] = subs): Buffer {
  const r = renderTemplate(Buffer.from(text), with_);
  assert.ok(r.ok, `rendering failed: ${JSON.stringify(r)}`);
  return r.data;
}
const rendered = (text: string, with_?: readonly Substitution[]) => render(text, with_).toString("utf8");

test("a placeholder at the start, at the end, repeated and adjacent is replaced everywhere", () => {
  assert.equal(rendered(`${A} tail`), "alpha tail");
  assert.equal(rendered(`head ${A}`), "head alpha");
  assert.equal(rendered(A), "alpha");
  assert.equal(rendered(`${A}-${A}-${A}`), "alpha-alpha-alpha");
  assert.equal(rendered(`${A}${B}${A}`), "alphabetaalpha");
  assert.equal(rendered(`x=${A}\ny=${B}\n`), "x=alpha\ny=beta\n");
});

test("a template without a placeholder comes out byte for byte; so does a placeholder of no secret", () => {
  assert.equal(rendered("listen = 8080\n"), "listen = 8080\n");
  assert.equal(rendered(""), "");
  assert.equal(rendered("<agenixd:cccc:placeholder>"), "<agenixd:cccc:placeholder>");
  assert.equal(rendered(`<agenixd:aaaa:placeholder`), "<agenixd:aaaa:placeholder", "a cut placeholder is text");
});

test("binary secrets: NUL bytes and invalid UTF-8 pass through untouched, and so do they in the template", () => {
  const binary = Buffer.from([0x00, 0xff, 0xfe, 0x0a, 0x00, 0xc3, 0x28, 0x80]);
  const out = render(Buffer.concat([Buffer.from([0xff, 0x00]), Buffer.from(A), Buffer.from([0x00, 0xc0])]), [sub("bin", A, binary)]);
  assert.deepEqual(out, Buffer.concat([Buffer.from([0xff, 0x00]), binary, Buffer.from([0x00, 0xc0])]));
});

test("a value holding placeholder text (its own or another's) stays literal: it is never scanned again", () => {
  const own = sub("a", A, `x${A}y`);
  const other = sub("b", B, `[${A}]`);
  assert.equal(rendered(`${A}|${B}`, [own, other]), `x${A}y|[${A}]`);
  // A value that completes a placeholder split around it is not a placeholder either.
  const half = A.slice(0, 10);
  assert.equal(rendered(`${B}${A.slice(10)}`, [sub("a", A, "alpha"), sub("b", B, half)]), `${half}${A.slice(10)}`);
});

test("CRLF in template and value is kept; trim drops one trailing \\n or \\r\\n, once, and only when asked", () => {
  assert.equal(rendered(`k=${A}\r\n`, [sub("a", A, "v\r\n")]), "k=v\r\n\r\n");
  assert.equal(trimOneNewline(Buffer.from("v\n")).toString(), "v");
  assert.equal(trimOneNewline(Buffer.from("v\r\n")).toString(), "v");
  assert.equal(trimOneNewline(Buffer.from("v\n\n")).toString(), "v\n", "only once");
  assert.equal(trimOneNewline(Buffer.from("v\r\n\r\n")).toString(), "v\r\n", "only once");
  assert.equal(trimOneNewline(Buffer.from("v\r")).toString(), "v\r", "a lone CR stays");
  assert.equal(trimOneNewline(Buffer.from("\n")).toString(), "");
  assert.equal(trimOneNewline(Buffer.from("")).toString(), "");
  assert.equal(trimOneNewline(Buffer.from("v\n ")).toString(), "v\n ", "only a trailing one");

  const secrets = parseManifest({
    version: 2, secretsDir: "/run/agenix", secretsMountPoint: "/run/agenix.d", identityPaths: [], secrets: [
      { name: "t", file: "/nix/store/t.age", placeholder: A, trim: true },
      { name: "k", file: "/nix/store/k.age", placeholder: B },
    ],
  }).secrets;
  const values = new Map([["t", Buffer.from("token\r\n")], ["k", Buffer.from("key\n")]]);
  assert.equal(rendered(`${A}|${B}`, substitutionsFor(secrets, (s) => values.get(s.name))), "token|key\n", "trim is per secret");
  assert.equal(values.get("t")!.toString(), "token\r\n", "the secret's own bytes are not changed");
});

test("an empty secret renders as nothing", () => {
  assert.equal(rendered(`a${A}b${A}`, [sub("a", A, "")]), "ab");
  assert.equal(rendered(A, [sub("a", A, "")]), "");
});

test("a template using a secret without a value fails naming every such secret; one not using it renders", () => {
  const failedB = [sub("a", A, "alpha"), sub("b", B, undefined), sub("c", "<c>", undefined)];
  assert.deepEqual(renderTemplate(Buffer.from(`${B}${A}<c>${B}`), failedB), { ok: false, unavailable: ["b", "c"] });
  assert.equal(rendered(`only ${A}`, failedB), "only alpha");
});

test("where placeholders overlap, the leftmost and then the longest wins, in one pass", () => {
  const short = sub("s", "<p>", "S");
  const long = sub("l", "<p>x", "L");
  assert.equal(rendered("<p>x<p>", [short, long]), "LS");
  assert.equal(rendered("a<<p>>", [short, long]), "a<S>");
});

test("renderTemplates: owner, group and mode from the template; an unreadable file or unknown owner is that template's failure", (t) => {
  const dir = mkdtempSync("/tmp/agenixd-render-");
  writeFileSync(join(dir, "t"), `token = "${A}"\n`);
  const accounts = { uid: (u: string) => (u === "tabby" ? 990 : u === "0" ? 0 : undefined), gid: (g: string) => (g === "0" ? 0 : g === "tabby" ? 991 : undefined) };
  const template = { name: "tabby/config.toml", file: join(dir, "t"), path: "/run/agenix/rendered/tabby/config.toml", mode: 0o440, owner: "tabby", group: "tabby", symlink: true, restartUnits: [], reloadUnits: [] };
  const [ok, missing, stranger] = renderTemplates([template, { ...template, file: join(dir, "absent") }, { ...template, owner: "nobody-here" }], [sub("a", A, "s3cret")], accounts);
  assert.ok(ok?.ok);
  assert.equal(ok.data.toString(), 'token = "s3cret"\n');
  assert.deepEqual(ok.own, { uid: 990, gid: 991, mode: 0o440 });
  assert.deepEqual(missing, { ok: false, template: { ...template, file: join(dir, "absent") }, cause: `cannot read the template: ${join(dir, "absent")} does not exist` });
  assert.equal(stranger?.ok, false);
  assert.match((stranger as { cause: string }).cause, /unknown owner "nobody-here"/);
  t.after(() => spawnSync("rm", ["-rf", dir]));
});

// ---- End to end, as root on a real ramfs ----

const takeCalls = fakeSystemctl();

const STRANGER = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

function activate(sb: Sandbox, secrets: SecretInput[], templates: TemplateInput[], extra: Record<string, unknown> = {}) {
  const r = sb.run(sb.manifest(secrets, extra, templates));
  return { ...r, calls: takeCalls(), changes: r.logs.filter((l) => typeof l.change === "string").map((l) => l.msg) };
}

function mode(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, "0");
}

const TABBY = (token: string) => `[model.completion.http]\nkind = "openai/completion"\napi_endpoint = "https://llm.example/v1"\napi_key = "${token}"\n`;

test("a template is rendered into the generation with its owner and mode, symlinked or copied to its path", (t) => {
  const sb = new Sandbox("tmpl");
  const user = withUser("agenixd-tabby");
  t.after(() => {
    sb.cleanup();
    user.remove();
  });
  takeCalls();
  const copy = join(sb.root, "etc", "wireguard", "wg0.conf");
  const secrets: SecretInput[] = [
    { name: "tabby-token", plaintext: "tok-123\n", trim: true },
    { name: "wg/key", plaintext: Buffer.from("aGVsbG8gd29ybGQ=\n") },
  ];
  const templates: TemplateInput[] = [
    { name: "tabby/config.toml", content: TABBY(placeholder("tabby-token")), owner: "agenixd-tabby", group: "agenixd-tabby", mode: "0440" },
    { name: "wg0.conf", content: `[Interface]\r\nPrivateKey = ${placeholder("wg/key")}ListenPort = 51820\r\n`, path: copy, symlink: false, mode: "0400" },
    { name: "linked.conf", content: `k=${placeholder("tabby-token")}`, path: join(sb.root, "etc", "linked.conf") },
  ];
  const r = activate(sb, secrets, templates);
  assert.equal(r.status, 0, r.stderr);
  const gen = join(sb.mountPoint, "1");
  assert.equal(sb.read("rendered/tabby/config.toml"), TABBY("tok-123"), "trimmed token inside");
  assert.equal(sb.read("tabby-token"), "tok-123\n", "the secret keeps its newline");
  assert.equal(mode(join(gen, "rendered/tabby/config.toml")), "0440");
  assert.equal(statSync(join(gen, "rendered/tabby/config.toml")).uid, user.uid);
  assert.equal(statSync(join(gen, "rendered/tabby/config.toml")).gid, user.gid);
  assert.equal(mode(join(gen, "rendered")), "0751");
  assert.equal(readFileSync(copy, "utf8"), "[Interface]\r\nPrivateKey = aGVsbG8gd29ybGQ=\nListenPort = 51820\r\n", "untrimmed, CRLF kept");
  assert.equal(mode(copy), "0400");
  assert.equal(lstatSync(copy).isSymbolicLink(), false);
  assert.equal(readlinkSync(join(sb.root, "etc", "linked.conf")), `${sb.secretsDir}/rendered/linked.conf`);
  assert.equal(readFileSync(join(sb.root, "etc", "linked.conf"), "utf8"), "k=tok-123");
  assert.deepEqual(r.changes, ["adding secret tabby-token", "adding secret wg/key", "adding template tabby/config.toml", "adding template wg0.conf", "adding template linked.conf"]);
  const done = r.logs.find((l) => l.msg === "generation 1 is active");
  assert.deepEqual(done?.templates, { rendered: 3, added: ["tabby/config.toml", "wg0.conf", "linked.conf"], modified: [], removed: [], unchanged: 0 });
  assert.doesNotMatch(r.stderr, /tok-123|aGVsbG8/, "no plaintext in the log");
});

test("a changed secret restarts the template's units ('modifying template x: content'); an unchanged run restarts nothing", (t) => {
  const sb = new Sandbox("tmpl-restart");
  t.after(() => sb.cleanup());
  takeCalls();
  const secrets = (token: string): SecretInput[] => [{ name: "token", plaintext: token }, { name: "other", plaintext: "o", restartUnits: ["other.service"] }];
  const templates = (extra: Partial<TemplateInput> = {}): TemplateInput[] => [{ name: "app.toml", content: `t=${placeholder("token")}`, restartUnits: ["app.service"], reloadUnits: ["proxy.service"], ...extra }];
  const first = activate(sb, secrets("v1"), templates());
  assert.equal(first.status, 0, first.stderr);
  assert.deepEqual(first.calls, [], "nothing at first boot");

  const same = activate(sb, secrets("v1"), templates());
  assert.equal(same.status, 0, same.stderr);
  assert.deepEqual(same.changes, []);
  assert.deepEqual(same.calls, []);

  const changed = activate(sb, secrets("v2"), templates());
  assert.equal(changed.status, 0, changed.stderr);
  assert.deepEqual(changed.changes, ["modifying secret token: content", "modifying template app.toml: content"]);
  assert.deepEqual(changed.calls, ["--no-block try-restart -- app.service", "--no-block try-reload-or-restart -- proxy.service"]);
  const unit = changed.logs.find((l) => l.unit === "app.service");
  assert.equal(unit?.msg, "restarting app.service (changed: template app.toml)");
  assert.deepEqual(unit?.templates, ["app.toml"]);
  assert.equal(sb.read("rendered/app.toml"), "t=v2");

  // The template text alone changes (a new store file): the template is modified, not the secret.
  const text = activate(sb, secrets("v2"), templates({ content: `token=${placeholder("token")}` }));
  assert.deepEqual(text.changes, ["modifying template app.toml: content"]);
  assert.deepEqual(text.calls, ["--no-block try-restart -- app.service", "--no-block try-reload-or-restart -- proxy.service"]);

  const modeOnly = activate(sb, secrets("v2"), templates({ content: `token=${placeholder("token")}`, mode: "0440" }));
  assert.deepEqual(modeOnly.changes, ["modifying template app.toml: mode"]);

  const removed = activate(sb, secrets("v2"), []);
  assert.equal(removed.status, 0, removed.stderr);
  assert.deepEqual(removed.changes, ["removing template app.toml"]);
  assert.deepEqual(removed.calls, ["--no-block try-restart -- app.service", "--no-block try-reload-or-restart -- proxy.service"]);
  assert.equal(existsSync(join(sb.secretsDir, "rendered")), false);
});

test("a secret that failed: the template keeps its previous rendering and fails naming the secret; nothing restarts", (t) => {
  const sb = new Sandbox("tmpl-failed");
  t.after(() => sb.cleanup());
  takeCalls();
  const ok = sb.encrypt("good");
  const templates: TemplateInput[] = [
    { name: "uses-bad.conf", content: `a=${placeholder("a")} b=${placeholder("b")}`, restartUnits: ["app.service"] },
    { name: "uses-a.conf", content: `a=${placeholder("a")}` },
  ];
  assert.equal(activate(sb, [{ name: "a", file: ok }, { name: "b", plaintext: "b1" }], templates).status, 0);

  const bad = sb.encrypt("b2", [STRANGER]);
  const r = activate(sb, [{ name: "a", file: sb.encrypt("good2") }, { name: "b", file: bad }], templates);
  assert.equal(r.status, 1);
  assert.equal(sb.read("rendered/uses-bad.conf"), "a=good b=b1", "the previous rendering, whole");
  assert.equal(sb.read("rendered/uses-a.conf"), "a=good2", "a template not using the failed secret is rendered");
  const failure = r.logs.find((l) => l.template === "uses-bad.conf");
  assert.equal(failure?.msg, "template not installed");
  assert.equal(failure?.cause, 'uses secret "b", which failed in this activation');
  assert.equal(failure?.keptPrevious, true);
  assert.deepEqual(r.changes, ["modifying secret a: content", "modifying template uses-a.conf: content"]);
  assert.deepEqual(r.calls, [], "the failed template restarts nothing");
  const state = JSON.parse(readFileSync(join(sb.mountPoint, ".status.json"), "utf8"));
  assert.deepEqual(state.failures.map((f: { name: string; subject?: string }) => [f.name, f.subject]), [["b", undefined], ["uses-bad.conf", "template"]]);
  assert.deepEqual(state.templates.map((x: { name: string }) => x.name), ["uses-bad.conf", "uses-a.conf"]);
  assert.doesNotMatch(r.stderr, /good2|b1/);

  // With no previous rendering, a template whose secret failed is not installed.
  const fresh = new Sandbox("tmpl-failed-first");
  t.after(() => fresh.cleanup());
  const first = activate(fresh, [{ name: "a", plaintext: "x" }, { name: "b", file: fresh.encrypt("b", [STRANGER]) }], templates);
  assert.equal(first.status, 1);
  assert.equal(existsSync(join(fresh.secretsDir, "rendered/uses-bad.conf")), false);
  assert.equal(fresh.read("rendered/uses-a.conf"), "a=x");
  assert.equal(first.logs.find((l) => l.template === "uses-bad.conf")?.keptPrevious, false);
});

test("no rendered plaintext reaches a log, on success or failure, whatever the template holds", (t) => {
  const sb = new Sandbox("tmpl-nolog");
  t.after(() => sb.cleanup());
  takeCalls();
  const value = "NEVER-LOGGED-3f9a";
  const templates: TemplateInput[] = [
    { name: "a.conf", content: `x=${placeholder("s")}`, restartUnits: ["a.service"] },
    { name: "denied", content: `${placeholder("s")}`, path: join(sb.root, "home", "u", "x") },
    { name: "unknown-owner", content: `${placeholder("s")}`, owner: "nobody-here" },
  ];
  mkdirSync(join(sb.root, "home", "u"), { recursive: true, mode: 0o777 }); // world-writable, not sticky: refused
  chmodSync(join(sb.root, "home", "u"), 0o777);
  const runs = [activate(sb, [{ name: "s", plaintext: value }], templates), activate(sb, [{ name: "s", plaintext: `${value}2` }], templates)];
  for (const r of runs) {
    assert.equal(r.status, 1, "two templates fail each time");
    assert.doesNotMatch(r.stderr, /NEVER-LOGGED/);
  }
  assert.equal(readFileSync(join(sb.mountPoint, "2", "rendered", "a.conf"), "utf8"), `x=${value}2`);
  assert.doesNotMatch(readFileSync(join(sb.mountPoint, ".status.json"), "utf8"), /NEVER-LOGGED/);
});

test("--dry-run renders in memory, prints the template changes and units, and writes nothing", (t) => {
  const sb = new Sandbox("tmpl-dry");
  t.after(() => sb.cleanup());
  takeCalls();
  const copy = join(sb.root, "srv", "app.conf");
  const templates = (extra: Partial<TemplateInput> = {}): TemplateInput[] => [
    { name: "app.conf", content: `k=${placeholder("k")}`, path: copy, symlink: false, restartUnits: ["app.service"], ...extra },
    { name: "old.conf", content: "static", reloadUnits: ["old.service"] },
  ];
  assert.equal(activate(sb, [{ name: "k", plaintext: "v1" }], templates()).status, 0);
  const manifest = sb.manifest([{ name: "k", plaintext: "v2" }], {}, [templates()[0]!, { name: "new.conf", content: "n" }]);
  const watched = [sb.mountPoint, sb.secretsDir, join(sb.root, "srv")];
  const before = treeHash(...watched);
  const r = spawnSync(process.execPath, [...AGENIXD, "activate", "--manifest", manifest, "--dry-run"], { encoding: "utf8", env: launchEnv({ ...process.env, NOTIFY_SOCKET: "" }) });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stdout,
    `dry run: against generation 1 (${sb.secretsDir}), nothing written\n` +
      "would modify secret k: content\nwould modify template app.conf: content\nwould add template new.conf\nwould remove template old.conf\n" +
      "would restart: app.service\nwould reload: old.service\n",
  );
  assert.doesNotMatch(r.stdout + r.stderr, /v2/);
  assert.equal(treeHash(...watched), before, "nothing written");
  assert.deepEqual(takeCalls(), []);
  assert.equal(readFileSync(copy, "utf8"), "k=v1");
});

test("the users phase keeps the templates as they are; agenixd status lists them", (t) => {
  const sb = new Sandbox("tmpl-users");
  t.after(() => sb.cleanup());
  takeCalls();
  const secrets = (pw: string): SecretInput[] => [{ name: "pw", plaintext: pw, neededForUsers: true }, { name: "k", plaintext: "key" }];
  const templates: TemplateInput[] = [{ name: "uses-pw", content: `p=${placeholder("pw")}`, restartUnits: ["a.service"] }];
  assert.equal(activate(sb, secrets("pw1"), templates).status, 0);
  const users = sb.run(sb.manifest(secrets("pw2"), {}, templates), ["--phase", "users"]);
  assert.equal(users.status, 0, users.stderr);
  assert.equal(sb.read("pw"), "pw2");
  assert.equal(sb.read("rendered/uses-pw"), "p=pw1", "rendered in the full phase only");
  const all = activate(sb, secrets("pw2"), templates);
  assert.deepEqual(all.changes, ["modifying template uses-pw: content"]);
  assert.equal(sb.read("rendered/uses-pw"), "p=pw2");

  const status = spawnSync(process.execPath, [...AGENIXD, "status", "--manifest", sb.manifest(secrets("pw2"), {}, templates)], { encoding: "utf8", env: launchEnv({ ...process.env }) });
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /^TEMPLATE +PATH +OWNER +GROUP +MODE +SIZE +CHANGED +UNITS$/m);
  assert.match(status.stdout, /^uses-pw +\S+\/run\/agenix\/rendered\/uses-pw +root +root +0400 +5 +\S+ +restart a\.service$/m);
  assert.doesNotMatch(status.stdout, /pw2/);
});
