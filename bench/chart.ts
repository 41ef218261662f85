// A small dependency-free SVG: per key type and N, the loop's and agenixd's median wall time on
// a log scale, with bare `node -e 0` as a dashed line and a/b printed over each pair.
import { rows, type BenchResults } from "./results.js";
import { median } from "./stats.js";

const esc = (s: string): string => s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!);

export function renderChart(r: BenchResults): string {
  const data = rows(r);
  const keyTypes = [...new Set(data.map((x) => x.keyType))];
  const counts = r.settings.counts.filter((n) => n > 0);
  const bare = median(r.bareNodeMs);
  const barW = 22, gap = 10, groupGap = 26, panelGap = 40;
  const top = 40, plotH = 220, left = 56, bottom = 50;
  const groupW = 2 * barW + gap;
  const panelW = counts.length * groupW + (counts.length - 1) * groupGap;
  const width = left + keyTypes.length * panelW + (keyTypes.length - 1) * panelGap + 150;
  const height = top + plotH + bottom;

  const values = [bare, ...data.flatMap((x) => [x.loopMs, x.agenixdMs])].filter((v) => v > 0);
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values)));
  const y = (v: number): number => top + plotH - (Math.log10(v / lo) / Math.log10(hi / lo)) * plotH;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="18" font-size="13" font-weight="bold">Activation wall time, median ms (log scale): agenix bash loop vs agenixd</text>`);
  for (let v = lo; v <= hi; v *= 10) {
    out.push(`<line x1="${left}" x2="${width - 150}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${v >= 1000 ? `${v / 1000} s` : `${v} ms`}</text>`);
  }
  keyTypes.forEach((keyType, k) => {
    const x0 = left + 10 + k * (panelW + panelGap);
    out.push(`<text x="${x0 + panelW / 2}" y="${height - 10}" text-anchor="middle" font-weight="bold">${esc(keyType)}</text>`);
    counts.forEach((count, i) => {
      const row = data.find((x) => x.keyType === keyType && x.count === count);
      if (!row) return;
      const gx = x0 + i * (groupW + groupGap);
      const bar = (v: number, dx: number, fill: string, title: string) =>
        out.push(`<rect x="${gx + dx}" y="${y(v)}" width="${barW}" height="${top + plotH - y(v)}" fill="${fill}"><title>${esc(title)}</title></rect>`);
      bar(row.loopMs, 0, "#9e9e9e", `loop, ${keyType}, N=${count}: ${row.loopMs.toFixed(1)} ms`);
      bar(row.agenixdMs, barW + gap, "#1f77b4", `agenixd, ${keyType}, N=${count}: ${row.agenixdMs.toFixed(1)} ms`);
      out.push(`<text x="${gx + barW + gap + barW / 2}" y="${y(row.agenixdMs) - 4}" text-anchor="middle">${row.ratio < 0.1 ? row.ratio.toFixed(3) : row.ratio.toFixed(2)}</text>`);
      out.push(`<text x="${gx + groupW / 2}" y="${top + plotH + 14}" text-anchor="middle">N=${count}</text>`);
    });
  });
  out.push(`<line x1="${left}" x2="${width - 150}" y1="${y(bare)}" y2="${y(bare)}" stroke="#d62728" stroke-dasharray="4 3"/>`);
  const lx = width - 140;
  out.push(`<rect x="${lx}" y="${top}" width="12" height="12" fill="#9e9e9e"/><text x="${lx + 16}" y="${top + 10}">agenix loop (b)</text>`);
  out.push(`<rect x="${lx}" y="${top + 18}" width="12" height="12" fill="#1f77b4"/><text x="${lx + 16}" y="${top + 28}">agenixd (a), a/b above</text>`);
  out.push(`<line x1="${lx}" x2="${lx + 12}" y1="${top + 42}" y2="${top + 42}" stroke="#d62728" stroke-dasharray="4 3"/><text x="${lx + 16}" y="${top + 46}">node -e 0 (${bare.toFixed(0)} ms)</text>`);
  out.push("</svg>", "");
  return out.join("\n");
}
