// The RSA host key must carry its CRT parameters, or every ssh-rsa secret decrypts ~4× slower.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import sshpk from "sshpk";
import { rsaPrivateKey } from "../src/rsa-key.js";
import { stringsContaining } from "./helpers/string-probe.js";

test("an OpenSSH RSA key becomes the same private key OpenSSL reads from its PEM form, CRT values included", (t) => {
  const dir = mkdtempSync("/tmp/agenixd-rsa-");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const openssh = join(dir, "key");
  execFileSync("ssh-keygen", ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "", "-f", openssh]);
  // The same key rewritten as PKCS #1 PEM, which holds dP, dQ and qInv, parsed by OpenSSL itself.
  const pem = join(dir, "key.pem");
  copyFileSync(openssh, pem);
  execFileSync("ssh-keygen", ["-q", "-p", "-m", "PEM", "-N", "", "-P", "", "-f", pem]);
  const reference = createPrivateKey(readFileSync(pem)).export({ format: "jwk" });

  const parsed = sshpk.parsePrivateKey(readFileSync(openssh), "ssh");
  const part = (name: string) => parsed.parts.find((p) => p.name === name)!.data;
  const ours = rsaPrivateKey({ n: part("n"), e: part("e"), d: part("d"), p: part("p"), q: part("q"), iqmp: part("iqmp") }).export({ format: "jwk" });

  for (const field of ["n", "e", "d", "p", "q", "dp", "dq", "qi"] as const) {
    assert.equal(ours[field], reference[field], `JWK field ${field}`);
  }
  // What sshpk's own PKCS #8 export gives, which this module exists to avoid.
  const viaPkcs8 = createPrivateKey(parsed.toBuffer("pkcs8", {})).export({ format: "jwk" });
  assert.notEqual(viaPkcs8.dp, reference.dp, "sshpk's PKCS #8 lacks the CRT values (if this fails, sshpk fixed it)");
});

test("the RSA private values never become JS strings on the way to OpenSSL", async (t) => {
  const dir = mkdtempSync("/tmp/agenixd-rsa-");
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "key");
  execFileSync("ssh-keygen", ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "", "-f", path]);
  const parsed = sshpk.parsePrivateKey(readFileSync(path), "ssh");
  const part = (name: string) => parsed.parts.find((p) => p.name === name)!.data;
  const parts = { n: part("n"), e: part("e"), d: part("d"), p: part("p"), q: part("q"), iqmp: part("iqmp") };
  const jwk = rsaPrivateKey(parts).export({ format: "jwk" }); // the first test checks these values
  const secret = ["d", "p", "q", "dp", "dq", "qi"].map((f) => Buffer.from(jwk[f as "d"]!, "base64url"));
  const needles = secret.flatMap((b) => [b.toString("hex").slice(0, 32), b.toString("base64url").slice(0, 32), b.toString("base64").slice(0, 32)]);
  const found = await stringsContaining(needles, async () => rsaPrivateKey(parts));
  assert.deepEqual(found, []);
});
