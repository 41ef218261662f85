// What encrypted credentials (age.credstore.encrypted, src/credstore-encrypted.ts) add to an
// activation: N credential secrets published in plaintext vs sealed with
// `systemd-creds encrypt --with-key=host`, in one run, as wall time of `agenixd activate`:
//   boot     a first activation (every credential sealed: one systemd-creds run each),
//   switch   a second one with the same plaintexts (every blob reused: no systemd-creds run),
// and the added cost per credential at boot. Root only; it re-runs itself in a private mount
// namespace with a tmpfs on /var/lib/systemd, so the machine's credential.secret is never used.
//
//   node build/bench/credstore-cost.js [--credentials 20] [--runs 7]
import { spawnSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { join } from "node:path";
import { Sandbox, type SecretInput } from "../test/helpers/sandbox.js";
import { ensurePrivateMountNamespace } from "./namespace.js";
import { median } from "./stats.js";

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at < 0 ? fallback : Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} wants a positive integer`);
  return value;
}

function timed(sb: Sandbox, manifest: string): number {
  const start = performance.now();
  const r = sb.run(manifest);
  const ms = performance.now() - start;
  if (r.status !== 0) throw new Error(`agenixd activate failed:\n${r.stderr}`);
  return ms;
}

function measureOnce(n: number, encrypted: boolean): { boot: number; switch: number } {
  const sb = new Sandbox(encrypted ? "bench-enc" : "bench-plain");
  try {
    const secrets: SecretInput[] = Array.from({ length: n }, (_, k) => ({ name: `cred-${k}`, plaintext: `token-${k}-${"x".repeat(40)}`, credential: true }));
    const extra = { credstore: join(sb.root, "run/credstore"), ...(encrypted ? { encryptedCredstore: { dir: join(sb.root, "run/credstore.encrypted"), withKey: "host" } } : {}) };
    const manifest = sb.manifest(secrets, extra);
    return { boot: timed(sb, manifest), switch: timed(sb, manifest) };
  } finally {
    sb.cleanup();
  }
}

/** Plaintext and encrypted interleaved, run by run, so that a change in the machine's load hits both alike. */
function measure(n: number, runs: number): Record<"plain" | "sealed", { boot: number[]; switch: number[] }> {
  const out = { plain: { boot: [] as number[], switch: [] as number[] }, sealed: { boot: [] as number[], switch: [] as number[] } };
  for (let i = 0; i < runs; i++) {
    for (const [key, encrypted] of [["plain", false], ["sealed", true]] as const) {
      const r = measureOnce(n, encrypted);
      out[key].boot.push(r.boot);
      out[key].switch.push(r.switch);
    }
  }
  return out;
}

ensurePrivateMountNamespace();
// In this namespace only: the host key systemd-creds makes lands on a tmpfs, not the machine's disk.
const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/var/lib/systemd"], { stdio: "inherit" });
if (mounted.status !== 0) throw new Error("cannot mount a tmpfs on /var/lib/systemd in the bench's mount namespace");
const n = arg("credentials", 20);
const runs = arg("runs", 7);
const { plain, sealed } = measure(n, runs);
const row = (what: string, p: number[], s: number[]) => `| ${what} | ${median(p).toFixed(0)} | ${median(s).toFixed(0)} | ${(median(s) / median(p)).toFixed(2)} | ${((median(s) - median(p)) / n).toFixed(1)} |`;
console.log(`node ${process.version}, ${n} credentials, median of ${runs} runs each, --with-key=host`);
console.log("| activation | plaintext ms | encrypted ms | ratio | added ms per credential |");
console.log("| --- | ---: | ---: | ---: | ---: |");
console.log(row("boot (all sealed)", plain.boot, sealed.boot));
console.log(row("switch, unchanged (all reused)", plain.switch, sealed.switch));
