// Which secrets a new generation changes, compared with the live one: each planned secret's bytes,
// owner, group and mode against the file the live generation has for it (src/changes.ts compares).
import { readFileNoFollow, type Ownership } from "./secure-fs.js";
import { compareSecret, type SecretChange } from "./changes.js";

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

export function diffSecrets(previousDir: string | undefined, planned: readonly PlannedContent[]): SecretDiff {
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
    if (change) changes.push(change);
    else unchanged.push(p.name);
  }
  return { changes, unchanged };
}
