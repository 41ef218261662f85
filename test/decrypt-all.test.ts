// Reading the encrypted files: a `file` that is not a regular file, or too large, or crafted to
// exhaust a parser, fails alone with a cause in words; the activation goes on and the failed
// secret keeps its previous value.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { AgeIdentity } from "../src/age/index.js";
import { DEFAULT_LIMITS } from "../src/age/index.js";
import { decryptAll } from "../src/decrypt-all.js";
import { loadIdentities } from "../src/identities.js";
import { type KeyPair, ageEncrypt, generateSshKey } from "./helpers/age-cli.js";
import { Sandbox } from "./helpers/sandbox.js";
import { secretSpec } from "./helpers/secret-spec.js";

let dir: string;
let key: KeyPair;
let identities: AgeIdentity[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agenixd-decrypt-all-"));
  key = generateSshKey(dir, "ed25519");
  identities = await loadIdentities([key.privatePath], (w) => assert.fail(w.reason));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function encryptedFile(name: string, plaintext: string): string {
  const path = join(dir, name);
  writeFileSync(path, ageEncrypt(plaintext, [key.recipient]));
  return path;
}

async function causes(files: Record<string, string>): Promise<Record<string, string>> {
  const results = await decryptAll(Object.entries(files).map(([name, file]) => secretSpec(name, file)), identities);
  return Object.fromEntries(results.map((r) => [r.secret.name, r.ok ? `ok: ${r.plaintext.toString()}` : r.cause]));
}

test("a file that is not a regular file is refused without being read: FIFO, device, directory, socket", { timeout: 20_000 }, async () => {
  const fifo = join(dir, "fifo.age");
  execFileSync("mkfifo", [fifo]);
  const directory = join(dir, "directory.age");
  mkdirSync(directory);
  // A device node nothing may open: mknod's own, in the test's directory (it is refused from its stat).
  const block = join(dir, "block.age");
  execFileSync("mknod", [block, "b", "7", "250"]);
  const socketPath = join(dir, "socket.age");
  const server = createServer().listen(socketPath);
  await once(server, "listening");
  try {
    // Before: the FIFO hung the activation forever, /dev/zero grew it to 17 GB.
    assert.deepEqual(
      await causes({ good: encryptedFile("good.age", "fine"), fifo, zero: "/dev/zero", directory, socket: socketPath, block }),
      {
        good: "ok: fine",
        fifo: "encrypted file is not a regular file (a FIFO)",
        zero: "encrypted file is not a regular file (a character device)",
        directory: "encrypted file is not a regular file (a directory)",
        socket: "encrypted file is not a regular file (a socket)",
        block: "encrypted file is not a regular file (a block device)",
      },
    );
  } finally {
    server.close();
  }
});

test("a final symlink is followed to a regular file, but not to a FIFO or a device", { timeout: 20_000 }, async () => {
  const real = encryptedFile("real.age", "through a link");
  const link = join(dir, "link.age");
  symlinkSync(real, link);
  const fifo = join(dir, "linked-fifo");
  execFileSync("mkfifo", [fifo]);
  const toFifo = join(dir, "to-fifo.age");
  symlinkSync(fifo, toFifo);
  const toZero = join(dir, "to-zero.age");
  symlinkSync("/dev/zero", toZero);
  const loop = join(dir, "loop.age");
  symlinkSync(loop, loop);
  assert.deepEqual(await causes({ link, toFifo, toZero, loop }), {
    link: "ok: through a link",
    toFifo: "encrypted file is not a regular file (a FIFO)",
    toZero: "encrypted file is not a regular file (a character device)",
    loop: "encrypted file cannot be read: too many levels of symbolic links",
  });
});

test("missing files and bad paths are said in words", async () => {
  const regular = encryptedFile("plain.age", "x");
  assert.deepEqual(await causes({ missing: join(dir, "nope.age"), throughFile: join(regular, "x.age") }), {
    missing: "encrypted file does not exist",
    throughFile: "encrypted file does not exist (a parent of its path is not a directory)",
  });
});

test("a file larger than the limit is refused from its size alone, before a byte is read", async () => {
  const huge = join(dir, "huge.age");
  // Sparse: 64 GiB would take that much memory (and time) to read; the limit stops it at its stat.
  execFileSync("truncate", ["-s", "64G", huge]);
  const start = performance.now();
  assert.deepEqual(await causes({ huge }), { huge: `encrypted file is larger than 64 MiB (limit 64 MiB)` });
  assert.ok(performance.now() - start < 1000, "refused without reading");
  const small = encryptedFile("small.age", "y".repeat(2000));
  const [result] = await decryptAll([secretSpec("small", small)], identities, { ...DEFAULT_LIMITS, maxFileBytes: 1024 });
  assert.equal(result!.ok ? "ok" : result!.cause, "encrypted file is larger than 1 KiB (limit 1 KiB)");
});

test("an activation with crafted and special files fails those alone, keeps their previous values, and finishes", { timeout: 120_000 }, (t) => {
  const sb = new Sandbox("limits");
  t.after(() => sb.cleanup());
  const names = ["good", "fifo", "zero", "stanzas", "armor"];
  const first = performance.now();
  const r1 = sb.run(sb.manifest(names.map((name) => ({ name, plaintext: `${name}-1` }))));
  const firstMs = performance.now() - first;
  assert.equal(r1.status, 0, r1.stderr);

  const fifo = join(sb.store, "fifo.age");
  execFileSync("mkfifo", [fifo]);
  const stanzas = join(sb.store, "stanzas.age");
  writeFileSync(stanzas, `age-encryption.org/v1\n${"-> a\n\n".repeat(1_000_000)}--- ${"A".repeat(43)}\n`);
  const armor = join(sb.store, "armor.age");
  writeFileSync(armor, `-----BEGIN AGE ENCRYPTED FILE-----\n${" ".repeat(1024 * 1024)}x\n`);
  const start = performance.now();
  const r2 = sb.run(sb.manifest([
    { name: "good", plaintext: "good-2" },
    { name: "fifo", file: fifo },
    { name: "zero", file: "/dev/zero" },
    { name: "stanzas", file: stanzas },
    { name: "armor", file: armor },
  ]));
  const secondMs = performance.now() - start;
  t.diagnostic(`first activation ${firstMs.toFixed(0)} ms; with four crafted files ${secondMs.toFixed(0)} ms`);
  assert.equal(r2.status, 1);
  assert.equal(readlinkSync(sb.secretsDir), `${sb.mountPoint}/2`);
  assert.equal(sb.read("good"), "good-2");
  for (const name of names.slice(1)) assert.equal(sb.read(name), `${name}-1`, `${name} keeps its previous value`);
  const errors = Object.fromEntries(r2.logs.filter((l) => l.level === "error").map((l) => [l.secret, [l.cause, l.keptPrevious]]));
  assert.deepEqual(errors, {
    fifo: ["encrypted file is not a regular file (a FIFO)", true],
    zero: ["encrypted file is not a regular file (a character device)", true],
    stanzas: ["header has more than 1024 stanzas (limit 1024)", true],
    armor: ["invalid armor: bad or missing end line", true],
  });
  // Before the limits: the FIFO never returned, /dev/zero took 17 GB, 1M stanzas 7 s, the armor > 200 s.
  assert.ok(secondMs < 5 * firstMs + 2000, `${secondMs.toFixed(0)} ms against ${firstMs.toFixed(0)} ms for the first activation`);
});
