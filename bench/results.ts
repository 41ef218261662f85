// What one bench run measured, and the figures derived from it for the table, chart and targets.
import type { CryptoFloor } from "./crypto-floor.js";
import type { KeyType } from "./options.js";
import type { StartCost } from "./start-cost.js";
import { median, slope } from "./stats.js";

export type Tool = "agenixd" | "agenix-loop";

export interface Sample {
  wallMs: number;
  readyMs: number | null;
  maxRssKiB: number;
  cpuMs: number;
  /** `node -e 0`, timed right after this run's pair (set by the bench once that is done). */
  bareNodeMs?: number;
}

export interface Cell {
  tool: Tool;
  keyType: KeyType;
  count: number;
  samples: Sample[];
}

export interface BenchResults {
  machine: { cpu: string; cores: number; kernel: string; node: string; age: string; date: string; loadBefore?: number; loadAfter?: number };
  settings: { counts: number[]; runs: number; smallRuns?: number; warmup: number; sizes: number[]; agenixdCommand: string; skipLoop?: boolean };
  bareNodeMs: number[];
  /** `agenixd --help`: process start plus the import of everything the entry module loads. */
  startImportMs?: number[];
  /** `node dist/agenixd.cjs --help`: the plain bundle's start, without the snapshot. */
  esmStartImportMs?: number[];
  floors: CryptoFloor[];
  cells: Cell[];
  /** Start cost at N = 20 of the snapshot (build CPU, other CPU) and the plain bundle (issue #18). */
  startCost?: StartCost;
}

export interface Row {
  keyType: KeyType;
  count: number;
  loopMs: number;
  agenixdMs: number;
  ratio: number;
  readyMs: number | null;
  aboveBareNodeMs: number;
  agenixdRssMiB: number;
  loopRssMiB: number;
}

export interface PerSecret {
  keyType: KeyType;
  /** Marginal cost of one more secret, from the least-squares slope over all counts. */
  agenixdUs: number;
  loopUs: number;
  floorUs: number;
}

const med = (xs: number[]): number => median(xs);

export function cell(r: BenchResults, tool: Tool, keyType: KeyType, count: number): Cell | undefined {
  return r.cells.find((c) => c.tool === tool && c.keyType === keyType && c.count === count);
}

export function rows(r: BenchResults): Row[] {
  const out: Row[] = [];
  for (const keyType of new Set(r.cells.map((c) => c.keyType))) {
    for (const count of r.settings.counts) {
      const a = cell(r, "agenixd", keyType, count);
      const b = cell(r, "agenix-loop", keyType, count);
      if (!a) continue;
      const agenixdMs = med(a.samples.map((s) => s.wallMs));
      const loopMs = b ? med(b.samples.map((s) => s.wallMs)) : NaN;
      const readies = a.samples.map((s) => s.readyMs).filter((x): x is number => x !== null);
      // Paired with the bare start timed right after each run, so that load drifting over the
      // bench's ten minutes does not land on one cell.
      out.push({
        keyType, count, loopMs, agenixdMs,
        ratio: agenixdMs / loopMs,
        readyMs: readies.length === a.samples.length ? med(readies) : null,
        aboveBareNodeMs: med(a.samples.map((s) => s.wallMs - s.bareNodeMs!)),
        agenixdRssMiB: Math.max(...a.samples.map((s) => s.maxRssKiB)) / 1024,
        loopRssMiB: b ? Math.max(...b.samples.map((s) => s.maxRssKiB)) / 1024 : NaN,
      });
    }
  }
  return out;
}

export function perSecret(r: BenchResults): PerSecret[] {
  return r.floors.map((floor) => {
    const points = (tool: Tool) => r.cells
      .filter((c) => c.tool === tool && c.keyType === floor.keyType)
      .map((c) => ({ x: c.count, y: med(c.samples.map((s) => s.wallMs)) }));
    return {
      keyType: floor.keyType,
      agenixdUs: slope(points("agenixd")) * 1e3,
      loopUs: slope(points("agenix-loop")) * 1e3,
      floorUs: floor.perSecretUs,
    };
  });
}
