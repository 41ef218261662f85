// Renders the results as the Markdown tables committed in bench/results/ and quoted in docs/.
import { cell, perSecret, rows, type BenchResults } from "./results.js";
import { median } from "./stats.js";
import { SMALL_COUNT } from "./options.js";

const ms = (x: number | null): string => (x === null || Number.isNaN(x) ? "–" : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const us = (x: number): string => (Number.isNaN(x) ? "–" : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const ok = (pass: boolean): string => (pass ? "✅" : "❌");

export function renderMarkdown(r: BenchResults): string {
  const bare = median(r.bareNodeMs);
  const lines: string[] = [];
  lines.push("# agenixd benchmark results", "");
  lines.push(`${r.machine.date} · ${r.machine.cpu} (${r.machine.cores} cores) · Linux ${r.machine.kernel} · Node ${r.machine.node} · Go age ${r.machine.age}` +
    (r.machine.loadBefore !== undefined ? ` · 1-min load average ${r.machine.loadBefore.toFixed(1)} before, ${r.machine.loadAfter?.toFixed(1)} after` : ""), "");
  const smallRuns = r.settings.smallRuns !== undefined && r.settings.smallRuns !== r.settings.runs ? ` (${r.settings.smallRuns} for N ≤ ${SMALL_COUNT})` : "";
  lines.push(`Medians of ${r.settings.runs} runs${smallRuns} (after ${r.settings.warmup} warm-up) per cell, each a fresh ramfs in a private mount namespace. ` +
    `Plaintext sizes cycle over ${r.settings.sizes.join(", ")} bytes. agenixd command: \`${r.settings.agenixdCommand}\`.`, "");

  lines.push("## Whole activation, agenixd (a) vs agenix's bash loop (b)", "");
  lines.push("| key | N | loop (b) ms | agenixd (a) ms | a/b | start→READY=1 ms | a − bare node ms | agenixd peak RSS MiB | loop peak RSS MiB |");
  lines.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const x of rows(r)) {
    lines.push(`| ${x.keyType} | ${x.count} | ${ms(x.loopMs)} | ${ms(x.agenixdMs)} | ${x.ratio.toFixed(3)} | ${ms(x.readyMs)} | ${ms(x.aboveBareNodeMs)} | ${x.agenixdRssMiB.toFixed(1)} | ${x.loopRssMiB.toFixed(1)} |`);
  }
  lines.push("", "a − bare node: the median, over the runs, of agenixd's time minus that of the `node -e 0` timed right after it.", "");

  lines.push("## Fixed cost", "");
  lines.push("| what | median ms |", "|---|---:|");
  lines.push(`| bare \`node -e 0\` | ${ms(bare)} |`);
  if (r.startImportMs?.length) lines.push(`| \`agenixd --help\` (process start + module import) | ${ms(median(r.startImportMs))} |`);
  if (r.esmStartImportMs?.length) lines.push(`| \`node dist/agenixd.cjs --help\` (the same from the plain bundle, without the snapshot) | ${ms(median(r.esmStartImportMs))} |`);
  for (const keyType of new Set(r.cells.map((c) => c.keyType))) {
    const a = cell(r, "agenixd", keyType, 0);
    const b = cell(r, "agenix-loop", keyType, 0);
    if (a) lines.push(`| agenixd, 0 secrets, ${keyType} identity (process start + module import + mount + swap + notify) | ${ms(median(a.samples.map((s) => s.wallMs)))} |`);
    if (b) lines.push(`| agenix loop, 0 secrets, ${keyType} identity | ${ms(median(b.samples.map((s) => s.wallMs)))} |`);
  }
  lines.push("");

  lines.push("## Per-secret cost against the crypto floor", "");
  lines.push("Marginal cost of one more secret (least-squares slope of the medians over N). The floor is node:crypto doing only the " +
    "age cryptography (X25519 [+ ssh-ed25519 tweak] or RSA-OAEP, HKDF-SHA256, ChaCha20-Poly1305, header HMAC) for the same sizes, sampled once after every timed run so that it sees the same machine load (median shown).", "");
  lines.push("| key | loop µs/secret | agenixd µs/secret | crypto floor µs/secret | agenixd / floor |");
  lines.push("|---|---:|---:|---:|---:|");
  for (const p of perSecret(r)) {
    lines.push(`| ${p.keyType} | ${us(p.loopUs)} | ${us(p.agenixdUs)} | ${us(p.floorUs)} | ${(p.agenixdUs / p.floorUs).toFixed(2)} |`);
  }
  lines.push("");

  const sc = r.startCost;
  const startOf = (name: string) => sc?.variants.find((v) => v.name === name);
  const above = (name: string) => {
    const v = startOf(name);
    return v ? median(v.aboveBareMs) : undefined;
  };
  if (sc) {
    lines.push(`## Start cost at N=${sc.count} ${sc.keyType} (issue #18)`, "");
    lines.push(`${sc.rounds} interleaved rounds: a bare \`node -e 0\` first, then the others in alternating order, each a fresh ramfs. ` +
      "\"− bare node\" is the median over the rounds of a start's wall time minus the bare start of its round. " +
      "\"Plain bundle\" is `node dist/agenixd.cjs` with the code caches the build made, as the package's launcher falls back to it; " +
      "\"no code cache\" is the same from a copy of dist/ without them, which is what another node gets (V8 refuses a cache made by another V8). " +
      (sc.otherCpuFlags.length > 0
        ? `"Other CPU" is the same blob with V8's optional CPU features off (\`${sc.otherCpuFlags.join(" ")}\`), as V8 runs on a baseline x86-64 CPU; the blob holds no compiled code of the build CPU's (docs/performance.md).`
        : "No \"other CPU\" stand-in on this architecture."), "");
    if (sc.qemuAccepted) {
      lines.push(`Under qemu-user (too slow to time): ${Object.entries(sc.qemuAccepted).map(([m, ok]) => `\`qemu-x86_64 -cpu ${m}\` ${ok ? "started the snapshot" : "did NOT start the snapshot"}`).join(", ")}.`, "");
    }
    lines.push("| start | median ms | − bare node ms | command |", "|---|---:|---:|---|");
    for (const v of sc.variants) {
      lines.push(`| ${v.name} | ${ms(median(v.wallMs))} | ${v.name === "bare node" ? "" : `+${ms(median(v.aboveBareMs))}`} | \`${v.command}\` |`);
    }
    lines.push("");
  }

  lines.push("## Targets", "");
  lines.push("| target | reached | result |", "|---|---|---:|");
  const all = rows(r);
  const at = (keyType: string, count: number) => all.find((x) => x.keyType === keyType && x.count === count);
  const big = at("ssh-ed25519", 1000);
  const small = at("ssh-ed25519", 20);
  const ed = perSecret(r).find((p) => p.keyType === "ssh-ed25519");
  if (big) lines.push(`| N=1000 ssh-ed25519: a/b ≤ 0.05 (issues #5, #18) | ${ok(big.ratio <= 0.05)} | ${big.ratio.toFixed(3)} |`);
  if (ed) lines.push(`| ssh-ed25519 per-secret ≤ 2× floor | ${ok(ed.agenixdUs <= 2 * ed.floorUs)} | ${(ed.agenixdUs / ed.floorUs).toFixed(2)}× |`);
  if (small) lines.push(`| N=20 ssh-ed25519: a/b ≤ 0.8 | ${ok(small.ratio <= 0.8)} | ${small.ratio.toFixed(3)} |`);
  if (small) lines.push(`| N=20 ssh-ed25519: a ≤ bare node + 40 ms (issue #5) | ${ok(small.aboveBareNodeMs <= 40)} | +${ms(small.aboveBareNodeMs)} ms |`);
  const target = (what: string, value: number | undefined, limit: number) => {
    if (value !== undefined) lines.push(`| ${what} ≤ bare node + ${limit} ms (issue #18) | ${ok(value <= limit)} | +${ms(value)} ms |`);
  };
  if (sc) {
    target(`N=${sc.count} ${sc.keyType}: snapshot, build CPU,`, above("snapshot, build CPU"), 25);
    target(`N=${sc.count} ${sc.keyType}: snapshot, other CPU,`, above("snapshot, other CPU"), 25);
    target(`N=${sc.count} ${sc.keyType}: plain bundle (\`node dist/agenixd.cjs\`)`, above("plain bundle"), 60);
    target(`N=${sc.count} ${sc.keyType}: plain bundle, no code cache (another node),`, above("plain bundle, no code cache"), 60);
  }
  const rssAt1000 = all.filter((x) => x.count === 1000);
  if (rssAt1000.length) {
    const worst = Math.max(...rssAt1000.map((x) => x.agenixdRssMiB));
    lines.push(`| N=1000 peak RSS ≤ 80 MiB (worst key type) | ${ok(worst <= 80)} | ${worst.toFixed(1)} MiB |`);
  }
  lines.push("");
  return lines.join("\n");
}
