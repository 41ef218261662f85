// Which run a full activation compares itself with, across the two phases.
//
// Under perl user creation the users phase (`--phase users`) runs first at boot and at every
// switch, writing a generation with only the password secrets changed and its own state record.
// The full run that follows must not take that record as "the last run": at boot it would see a
// live generation and restart every secret's units (the README promises none at first boot), and
// at a switch it would compute removed secrets from the new manifest, so a removed secret's
// restartUnits would never fire. So every record says which boot wrote it (the kernel's boot id)
// and carries the secret list of the last *full* run of that boot: the users phase copies it
// forward unchanged, the full phase replaces it. No full run recorded for this boot id means
// first boot. A record without a boot id is an older agenixd's, written by a full run as far as
// anyone can tell (the old behaviour).
import { readFileSync } from "node:fs";
import type { RunState, SecretRecord } from "./state.js";

/** The secrets and templates a full run installed, as the next full run compares with. */
export interface FullRunRecord {
  readonly bootId: string;
  readonly secrets: readonly SecretRecord[];
  readonly templates?: readonly SecretRecord[];
}

/** The fields of a state record that carry the full run across phases. */
export interface RunRecordFields {
  readonly bootId?: string;
  readonly fullRun?: FullRunRecord;
}

export const BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id";

/** The kernel's id of this boot (a UUID); "" when it cannot be read, which never matches a record. */
export function currentBootId(path: string = BOOT_ID_PATH): string {
  try {
    const id = readFileSync(path, "utf8").trim();
    return /^[0-9a-f-]{1,64}$/.test(id) ? id : "";
  } catch {
    return "";
  }
}

/**
 * What a full run compares itself with: the last full run of this boot, or undefined when this
 * boot has none yet (first boot: nothing is restarted, nothing is "removed").
 */
export function lastFullRun(state: RunState | undefined, bootId: string): Pick<FullRunRecord, "secrets" | "templates"> | undefined {
  if (state === undefined) return undefined;
  if (state.bootId === undefined) return state; // an older agenixd's record: its last run was a full one
  if (bootId === "" || state.bootId !== bootId) return undefined;
  const full = state.fullRun;
  return full !== undefined && full.bootId === bootId && Array.isArray(full.secrets) ? full : undefined;
}

/**
 * The boot id and full-run fields of the record a run writes: a full run records itself, the users
 * phase carries forward the full run of this boot it found (or none).
 */
export function runRecordFields(
  phase: "all" | "users", bootId: string, previous: RunState | undefined,
  secrets: readonly SecretRecord[], templates: readonly SecretRecord[] | undefined,
): RunRecordFields {
  if (phase === "all") return { bootId, fullRun: { bootId, secrets, ...(templates ? { templates } : {}) } };
  const carried = previous?.bootId === bootId && previous.fullRun?.bootId === bootId ? previous.fullRun : undefined;
  return carried ? { bootId, fullRun: carried } : { bootId };
}
