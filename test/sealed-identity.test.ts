// Host identities sealed by systemd-creds (src/sealed-identity.ts), for real: the documented
// command line seals an age identity with `systemd-creds encrypt --with-key=host`, agenixd opens
// it and decrypts with it; a credential that no longer opens (another host key, a renamed file)
// fails alone with systemd-creds' line while the other identities still load. Each case runs in
// a child in its own mount namespace with a tmpfs on /var/lib/systemd, so the machine's own
// credential.secret is never read, made or changed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ageEncrypt, generateAgeKey } from "./helpers/age-cli.js";
import { nixEval } from "./helpers/nix.js";

const build = fileURLToPath(new URL("../src/", import.meta.url));

interface Outcome {
  identities: string[];
  warnings: { path: string; reason: string; skipped: boolean }[];
  plaintext?: string;
}

/** Runs `shell` (which seals) and then loads `paths` with agenixd, inside a private /var/lib/systemd. */
function inPrivateCredentialStore(dir: string, shell: string, paths: string[], ciphertext?: string): Outcome {
  const script = join(dir, "load.mjs");
  writeFileSync(
    script,
    `import { loadIdentities } from ${JSON.stringify(join(build, "identities.js"))};
     import { decryptAge } from ${JSON.stringify(join(build, "age/index.js"))};
     import { readFileSync } from "node:fs";
     const warnings = [];
     const ids = await loadIdentities(${JSON.stringify(paths)}, (w) => warnings.push(w));
     const out = { identities: ids.map((i) => i.type + " " + i.source), warnings };
     ${ciphertext ? `out.plaintext = (await decryptAge(readFileSync(${JSON.stringify(ciphertext)}), ids)).toString();` : ""}
     process.stdout.write(JSON.stringify(out));`,
  );
  const r = spawnSync(
    "unshare",
    ["--mount", "--propagation", "private", "bash", "-euc", `mount -t tmpfs -o mode=0755 tmpfs /var/lib/systemd; cd ${dir}; ${shell}; exec "$0" ${script}`, process.execPath],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Outcome;
}

// docs/module.md: seal a new age identity, print its recipient.
const SEAL = (cred: string) => `age-keygen 2>/dev/null | systemd-creds encrypt --with-key=host - ${cred}; systemd-creds decrypt ${cred} - | age-keygen -y > ${cred}.pub`;

test("a sealed age identity opens and decrypts a secret encrypted to the recipient it printed", () => {
  const dir = mkdtempSync("/tmp/agenixd-sealed-");
  const cred = join(dir, "host.cred");
  // The recipient is only known after sealing: seal, encrypt to it, load, all in one namespace.
  const secret = join(dir, "secret.age");
  const shell = `${SEAL(cred)}; age -r "$(cat ${cred}.pub)" -o ${secret} <<<'sealed hello'`;
  const out = inPrivateCredentialStore(dir, shell, [cred], secret);
  assert.deepEqual(out.warnings, []);
  assert.deepEqual(out.identities, [`X25519 ${cred}`]);
  assert.equal(out.plaintext, "sealed hello\n");
});

test("a credential sealed under another host key fails alone, with systemd-creds' reason; the next identity is used", () => {
  const dir = mkdtempSync("/tmp/agenixd-sealed-");
  const cred = join(dir, "host.cred");
  const plain = generateAgeKey(dir, "fallback.key");
  const secret = join(dir, "secret.age");
  writeFileSync(secret, ageEncrypt("fallback works", [plain.recipient]));
  // Seal, then lose the host key (a re-installed machine; for tpm2, a new TPM or other PCRs).
  const shell = `${SEAL(cred)}; rm /var/lib/systemd/credential.secret; echo x | systemd-creds encrypt --with-key=host - ${dir}/other.cred`;
  const out = inPrivateCredentialStore(dir, shell, [cred, plain.privatePath], secret);
  assert.deepEqual(out.identities, [`X25519 ${plain.privatePath}`]);
  assert.equal(out.warnings.length, 1);
  assert.equal(out.warnings[0]!.path, cred);
  assert.equal(out.warnings[0]!.skipped, true);
  assert.match(out.warnings[0]!.reason, /^sealed identity does not open: systemd-creds decrypt failed \(exit status 1\): .+/);
  assert.equal(out.plaintext, "fallback works");
});

test("a renamed credential is refused by systemd's embedded name, a missing one is skipped", () => {
  const dir = mkdtempSync("/tmp/agenixd-sealed-");
  const cred = join(dir, "host.cred");
  const renamed = join(dir, "renamed.cred");
  const out = inPrivateCredentialStore(dir, `${SEAL(cred)}; cp ${cred} ${renamed}`, [renamed, join(dir, "absent.cred")]);
  assert.deepEqual(out.identities, []);
  assert.match(out.warnings[0]!.reason, /does not match filename/);
  assert.deepEqual(out.warnings[1], { path: join(dir, "absent.cred"), reason: "file does not exist", skipped: true });
});

test("nix/unit.nix: a .cred identity gives the unit AGENIXD_SYSTEMD_CREDS and the TPM device, others do not", () => {
  const unit = fileURLToPath(new URL("../../nix/unit.nix", import.meta.url));
  const service = (paths: string[]) =>
    nixEval(
      `let s = (import ${unit} { agenixd = "/a"; systemctl = "/nix/store/x-systemd/bin/systemctl"; manifest = "/x"; identityPaths = arg; }).services.agenixd; in { env = s.environment; devices = s.serviceConfig.DeviceAllow or null; policy = s.serviceConfig.DevicePolicy; }`,
      paths,
    ) as { env: Record<string, string>; devices: string[] | null; policy: string };
  const sealed = service(["/var/lib/agenixd/host.cred", "/etc/ssh/ssh_host_ed25519_key"]);
  assert.equal(sealed.env.AGENIXD_SYSTEMD_CREDS, "/nix/store/x-systemd/bin/systemd-creds");
  assert.deepEqual(sealed.devices, ["/dev/tpmrm0 rw"]);
  assert.equal(sealed.policy, "closed");
  const plain = service(["/etc/ssh/ssh_host_ed25519_key"]);
  assert.equal(plain.env.AGENIXD_SYSTEMD_CREDS, undefined);
  assert.equal(plain.devices, null);
});
