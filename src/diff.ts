// Which secrets a new generation changes, compared with the live one (bytes, owner and mode).
import { timingSafeEqual } from "node:crypto";
import { readFileNoFollow, type Ownership } from "./secure-fs.js";

export interface PlannedContent {
  readonly name: string;
  readonly plaintext: Buffer;
  readonly own: Ownership;
}

export interface SecretChanges {
  readonly added: readonly string[];
  readonly changed: readonly string[];
  readonly unchanged: readonly string[];
}

export function diffSecrets(previousDir: string | undefined, planned: readonly PlannedContent[]): SecretChanges {
  const added: string[] = [];
  const changed: string[] = [];
  const unchanged: string[] = [];
  if (previousDir === undefined) return { added: planned.map((p) => p.name), changed, unchanged };
  for (const p of planned) {
    let previous;
    try {
      previous = readFileNoFollow(`${previousDir}/${p.name}`);
    } catch {
      added.push(p.name);
      continue;
    }
    const same =
      previous.own.uid === p.own.uid &&
      previous.own.gid === p.own.gid &&
      previous.own.mode === p.own.mode &&
      previous.data.length === p.plaintext.length &&
      timingSafeEqual(previous.data, p.plaintext);
    previous.data.fill(0);
    (same ? unchanged : changed).push(p.name);
  }
  return { added, changed, unchanged };
}
