// Which secrets a new generation changes, compared with the live one: each planned secret's bytes,
// owner, group and mode against the file the live generation has for it (src/changes.ts compares).
import { readFileNoFollow, type Ownership } from "./secure-fs.js";
import { compareSecret, type SecretChange, type Subject } from "./changes.js";

export interface PlannedContent {
  readonly name: string;
  readonly plaintext: Buffer;
  readonly own: Ownership;
}

export interface SecretDiff {
  /** Added and modified secrets, in plan order. */
  readonly changes: readonly SecretChange[];
  readonly unchanged: readonly string[];
}

/** `previousDir`: where the live generation keeps them (its `rendered/` for templates); `subject` is put on each change. */
export function diffSecrets(previousDir: string | undefined, planned: readonly PlannedContent[], subject?: Subject): SecretDiff {
  const changes: SecretChange[] = [];
  const unchanged: string[] = [];
  for (const p of planned) {
    let previous;
    if (previousDir !== undefined) {
      try {
        previous = readFileNoFollow(`${previousDir}/${p.name}`);
      } catch {
        // not in the live generation: added
      }
    }
    const change = compareSecret(p.name, previous && { data: previous.data, ...previous.own }, { data: p.plaintext, ...p.own });
    previous?.data.fill(0);
    if (change) changes.push(subject === undefined ? change : { ...change, subject });
    else unchanged.push(p.name);
  }
  return { changes, unchanged };
}
