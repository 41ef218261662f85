// What the last activation left for `agenixd status`: the live generation, each secret's target and
// units, when its installed value last changed, and what failed. A root-only file on the ramfs
// (`${secretsMountPoint}/.status.json`, 0600), so it is gone with the generations at shutdown and
// never on a disk. It holds names, paths, causes and times; never a value. Templates (issue 15) have
// records of their own; a state file without them (an older agenixd's) reads as having none.
import { closeSync, constants, openSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import type { FullRunRecord } from "./run-record.js";

export interface SecretRecord {
  readonly name: string;
  readonly path: string;
  readonly restartUnits: readonly string[];
  readonly reloadUnits: readonly string[];
  /** When the installed value (content, owner, group or mode) last changed, ISO 8601. */
  readonly changedAt: string;
  /** The credential name it is published under in the credstore, if it is. */
  readonly credential?: string;
  /** Published sealed (src/credstore-encrypted.ts): it has no file of its own; `path` is its link in the encrypted credstore. */
  readonly sealed?: true;
}

export interface FailureRecord {
  readonly name: string;
  readonly file: string;
  readonly cause: string;
  readonly keptPrevious: boolean;
  /** Absent for a secret. */
  readonly subject?: "template";
  /** Deferred, not failed: it waits for this unit (docs/plugins.md). */
  readonly waitsFor?: string;
}

export interface RunState {
  readonly version: 1;
  /** The manifest the run read. */
  readonly manifest: string;
  readonly generation: number | undefined;
  readonly finishedAt: string;
  readonly secrets: readonly SecretRecord[];
  /** The rendered templates (version 2 manifests); absent in an older agenixd's file. */
  readonly templates?: readonly SecretRecord[];
  /** Where credentials were published, so that a run with another (or none) removes the old links. */
  readonly credstore?: string;
  /** Where sealed credentials were published (src/credstore-encrypted.ts), likewise. */
  readonly encryptedCredstore?: string;
  readonly failures: readonly FailureRecord[];
  /** The boot that wrote it (src/run-record.ts); absent in an older agenixd's file. */
  readonly bootId?: string;
  /** This boot's last full run, carried forward by the users phase (src/run-record.ts). */
  readonly fullRun?: FullRunRecord;
}

export const STATE_FILE = ".status.json";

export function statePath(mountPoint: string): string {
  return join(mountPoint, STATE_FILE);
}

/** The last run's state, or undefined when there is none (first boot) or it cannot be read. */
export function readState(mountPoint: string): RunState | undefined {
  let text: string;
  try {
    const fd = openSync(statePath(mountPoint), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  try {
    const state = JSON.parse(text) as RunState;
    const valid = state && state.version === 1 && Array.isArray(state.secrets) && Array.isArray(state.failures) && (state.templates === undefined || Array.isArray(state.templates));
    return valid ? state : undefined;
  } catch {
    return undefined;
  }
}

/** Replaces the state file atomically: a fresh 0600 file, renamed over the old one. */
export function writeState(mountPoint: string, state: RunState): void {
  const target = statePath(mountPoint);
  const temp = join(mountPoint, `${STATE_FILE}.${randomBytes(6).toString("hex")}`);
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    const bytes = Buffer.from(`${JSON.stringify(state)}\n`);
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
  } catch (e) {
    closeSync(fd);
    unlinkSync(temp);
    throw e;
  }
  closeSync(fd);
  renameSync(temp, target);
}

/**
 * The marker agenixd-deferred.service starts on (ConditionPathExists=): present, listing the units
 * waited for, after a full run that deferred a secret; absent after one that deferred none.
 */
export const DEFERRED_MARKER = ".deferred";

export function markDeferred(mountPoint: string, units: readonly string[]): void {
  const target = join(mountPoint, DEFERRED_MARKER);
  if (units.length === 0) {
    try {
      unlinkSync(target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    return;
  }
  const temp = join(mountPoint, `${DEFERRED_MARKER}.${randomBytes(6).toString("hex")}`);
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    const bytes = Buffer.from(`${units.join("\n")}\n`);
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, target);
}

/** `changedAt` for each secret (or template) of a run: now for the changed ones, else what the previous records said. */
export function carryChangeTimes(previous: readonly SecretRecord[] | undefined, changed: ReadonlySet<string>, now: string): (name: string) => string {
  const before = new Map((previous ?? []).map((s) => [s.name, s.changedAt]));
  return (name) => (changed.has(name) ? now : (before.get(name) ?? now));
}
