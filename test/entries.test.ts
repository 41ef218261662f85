// The two ways `npm run build` makes to start agenixd: the V8 startup snapshot the NixOS package
// runs (node --snapshot-blob dist/agenixd.blob -- …) and the plain bundle (node dist/agenixd.cjs).
// Every other activation test runs the snapshot; here both run the same commands and must agree.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readlinkSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Encrypter, generateHybridIdentity, identityToRecipient } from "age-encryption";
import { generateAgeKey } from "./helpers/age-cli.js";
import { ENTRIES, type Entry, Sandbox } from "./helpers/sandbox.js";

function agenixd(entry: Entry, args: string[]) {
  return spawnSync(process.execPath, [...ENTRIES[entry], ...args], { encoding: "utf8", env: { ...process.env, NOTIFY_SOCKET: "" } });
}

for (const entry of Object.keys(ENTRIES) as Entry[]) {
  test(`${entry}: --help prints the usage and exits 0; a usage error exits 2`, () => {
    for (const flag of ["--help", "-h"]) {
      const help = agenixd(entry, [flag]);
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, /^usage: agenixd activate --manifest FILE/);
    }
    for (const args of [[], ["activate"], ["decrypt", "--manifest", "/x"], ["activate", "--manifest", "/x", "--phase", "later"], ["--bogus"]]) {
      const r = agenixd(entry, args);
      assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /usage: agenixd/);
      assert.equal(r.stdout, "");
    }
  });

  test(`${entry}: installs secrets for an SSH host key, an X25519 key and an ML-KEM hybrid key`, async (t) => {
    const sb = new Sandbox(`entry-${entry}`);
    t.after(() => sb.cleanup());
    const x25519 = generateAgeKey(sb.root, "x25519.key");
    const hybrid = await generateHybridIdentity();
    const hybridKey = join(sb.root, "hybrid.key");
    writeFileSync(hybridKey, `${hybrid}\n`, { mode: 0o600 });
    const encrypter = new Encrypter();
    encrypter.addRecipient(await identityToRecipient(hybrid));
    const pqFile = join(sb.store, "pq.age");
    writeFileSync(pqFile, await encrypter.encrypt("post-quantum value"));

    const manifest = sb.manifest(
      [
        { name: "ssh", plaintext: "ssh value", mode: "0440" },
        { name: "x25519", plaintext: "x25519 value", recipients: [x25519.recipient] },
        { name: "nested/pq", file: pqFile },
      ],
      { identityPaths: [sb.hostKey.privatePath, x25519.privatePath, hybridKey] },
    );
    const r = sb.run(manifest, [], ENTRIES[entry]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(sb.read("ssh"), "ssh value");
    assert.equal(statSync(join(sb.secretsDir, "ssh")).mode & 0o777, 0o440);
    assert.equal(sb.read("x25519"), "x25519 value");
    assert.equal(sb.read("nested/pq"), "post-quantum value");
    assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/1`);
    const done = r.logs.find((l) => l.msg === "generation 1 is active");
    assert.deepEqual(done?.added, ["ssh", "x25519", "nested/pq"]);
    // pino computes a pid and hostname when it loads, which in the snapshot are the build's.
    for (const line of r.logs) assert.ok(!("pid" in line) && !("hostname" in line), JSON.stringify(line));
  });

  test(`${entry}: a secret for another key fails alone, named, with exit status 1`, (t) => {
    const sb = new Sandbox(`entry-fail-${entry}`);
    t.after(() => sb.cleanup());
    const stranger = generateAgeKey(sb.root, "stranger.key");
    const r = sb.run(sb.manifest([{ name: "good" }, { name: "foreign", recipients: [stranger.recipient] }]), [], ENTRIES[entry]);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(sb.read("good"), "value of good");
    const failed = r.logs.find((l) => l.msg === "secret not installed");
    assert.equal(failed?.secret, "foreign");
    assert.match(String(failed?.cause), /no identity matches any recipient/);
  });
}
