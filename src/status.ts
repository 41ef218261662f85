// `agenixd status [--json]`: the live generation and each secret in it as the file system has it
// now (owner, group, mode, size), with what the last activation recorded (target path, units, last
// change, failures); likewise each rendered template (issue 15). Healthy when the last run installed
// every secret and template and every one is in place.
import { lstatSync, readFileSync } from "node:fs";
import { sealedEntry } from "./credstore-encrypted.js";
import { currentGeneration, generationDir } from "./generations.js";
import { readState, type FailureRecord, type SecretRecord } from "./state.js";
import { RENDERED_ENTRY } from "./templates.js";

export interface SecretStatus {
  readonly name: string;
  readonly path: string;
  /** Missing from the live generation. */
  readonly missing: boolean;
  readonly owner?: string;
  readonly group?: string;
  readonly mode?: string;
  readonly size?: number;
  readonly changedAt?: string;
  readonly restartUnits: readonly string[];
  readonly reloadUnits: readonly string[];
  /** The credential name it is published under, for a secret in the credstore. */
  readonly credential?: string;
}

export interface Status {
  readonly secretsDir: string;
  readonly secretsMountPoint: string;
  readonly generation: number | undefined;
  readonly manifest?: string;
  readonly lastRun?: string;
  readonly secrets: readonly SecretStatus[];
  /** Rendered templates, as `secrets` (their files are in the generation's `rendered/`). */
  readonly templates: readonly SecretStatus[];
  readonly failures: readonly FailureRecord[];
  readonly health: "healthy" | "degraded" | "inactive";
}

/** Exit status of `agenixd status`: 0 healthy, 1 degraded, 3 no live generation (as `systemctl status` uses 3). */
export const STATUS_EXIT = { healthy: 0, degraded: 1, inactive: 3 } as const;

export function collectStatus(secretsDir: string, secretsMountPoint: string, files: { passwd?: string; group?: string } = {}): Status {
  const generation = currentGeneration(secretsDir, secretsMountPoint);
  const state = readState(secretsMountPoint);
  if (generation === undefined) {
    return { secretsDir, secretsMountPoint, generation, secrets: [], templates: [], failures: state?.failures ?? [], health: "inactive", ...(state ? { manifest: state.manifest, lastRun: state.finishedAt } : {}) };
  }
  const userName = idNames(files.passwd ?? "/etc/passwd");
  const groupName = idNames(files.group ?? "/etc/group");
  const dir = generationDir(secretsMountPoint, generation);
  const inspect = (s: SecretRecord, file: string): SecretStatus => {
    const common = { name: s.name, path: s.path, changedAt: s.changedAt, restartUnits: s.restartUnits, reloadUnits: s.reloadUnits, ...(s.credential === undefined ? {} : { credential: s.credential }) };
    let st;
    try {
      st = lstatSync(file);
    } catch {
      return { ...common, missing: true };
    }
    return {
      ...common,
      missing: !st.isFile(),
      owner: userName(st.uid),
      group: groupName(st.gid),
      mode: (st.mode & 0o7777).toString(8).padStart(4, "0"),
      size: st.size,
    };
  };
  const secrets = (state?.secrets ?? []).map((s) => inspect(s, s.sealed ? `${dir}/${sealedEntry(s.name)}` : `${dir}/${s.name}`));
  const templates = (state?.templates ?? []).map((t) => inspect(t, `${dir}/${RENDERED_ENTRY}/${t.name}`));
  const failures = state?.failures ?? [];
  const healthy = state !== undefined && state.generation === generation && failures.length === 0 && secrets.every((s) => !s.missing) && templates.every((t) => !t.missing);
  return {
    secretsDir,
    secretsMountPoint,
    generation,
    ...(state ? { manifest: state.manifest, lastRun: state.finishedAt } : {}),
    secrets,
    templates,
    failures,
    health: healthy ? "healthy" : "degraded",
  };
}

/** A table a person reads at a glance. */
export function renderStatus(status: Status): string {
  const lines: string[] = [];
  if (status.generation === undefined) {
    lines.push(`${status.secretsDir}: no live generation (agenixd has not installed secrets in this boot)`);
  } else {
    lines.push(`${status.secretsDir} -> ${generationDir(status.secretsMountPoint, status.generation)}: generation ${status.generation}, ${status.health}`);
  }
  if (status.lastRun) lines.push(`last activation: ${status.lastRun}${status.manifest ? ` (${status.manifest})` : ""}`);
  for (const [kind, items] of [["SECRET", status.secrets], ["TEMPLATE", status.templates]] as const) {
    if (items.length === 0) continue;
    const header = [kind, "PATH", "OWNER", "GROUP", "MODE", "SIZE", "CHANGED", "UNITS"];
    const rows = items.map((s) => [
      s.name,
      s.path,
      s.owner ?? "-",
      s.group ?? "-",
      s.missing ? "missing" : (s.mode ?? "-"),
      s.size === undefined ? "-" : String(s.size),
      s.changedAt ?? "-",
      [...s.restartUnits.map((u) => `restart ${u}`), ...s.reloadUnits.map((u) => `reload ${u}`)].join(", ") || "-",
    ]);
    lines.push("", ...table([header, ...rows]));
  }
  if (status.failures.length > 0) {
    lines.push("", `failed in the last activation (${status.failures.length}):`);
    for (const f of status.failures) {
      const kept = f.keptPrevious ? ` (previous ${f.subject === "template" ? "rendering" : "value"} kept)` : "";
      lines.push(`  ${f.subject === "template" ? "template " : ""}${f.name}: ${f.waitsFor ? `deferred until ${f.waitsFor}: ` : ""}${f.cause}${kept}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  "));
}

/** id → name from /etc/passwd or /etc/group; the number itself when no entry has it. */
function idNames(file: string): (id: number) => string {
  const names = new Map<number, string>();
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    // ids are shown as numbers
  }
  for (const line of text.split("\n")) {
    const [name, , id] = line.split(":");
    if (name && id !== undefined && /^[0-9]+$/.test(id) && !names.has(Number(id))) names.set(Number(id), name);
  }
  return (id) => names.get(id) ?? String(id);
}
