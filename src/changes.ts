// What an activation changed, secret by secret: added, modified (and in what), removed. Compared
// against the generation that was live before, so the switch report, the restarts and the dry run
// all speak of the same thing. Never a value: only names and which aspects differ.
import { timingSafeEqual } from "node:crypto";

export type Aspect = "content" | "owner" | "group" | "mode";

/** A secret as one generation holds it. */
export interface SecretState {
  readonly data: Uint8Array;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
}

/** What changed: a secret, or a rendered template (issue 15). */
export type Subject = "secret" | "template";

/** `subject` is absent for a secret. */
export type SecretChange =
  | { readonly kind: "added"; readonly name: string; readonly subject?: Subject }
  | { readonly kind: "modified"; readonly name: string; readonly aspects: readonly Aspect[]; readonly subject?: Subject }
  | { readonly kind: "removed"; readonly name: string; readonly subject?: Subject };

/** The aspects in which `next` differs from `previous`; empty when they are the same. */
export function changedAspects(previous: SecretState, next: SecretState): Aspect[] {
  const aspects: Aspect[] = [];
  if (previous.data.length !== next.data.length || !timingSafeEqual(previous.data, next.data)) aspects.push("content");
  if (previous.uid !== next.uid) aspects.push("owner");
  if (previous.gid !== next.gid) aspects.push("group");
  if ((previous.mode & 0o7777) !== (next.mode & 0o7777)) aspects.push("mode");
  return aspects;
}

/**
 * The change for one secret that the new generation holds; undefined when nothing changed.
 * `previous` is undefined when the previous generation did not have it.
 */
export function compareSecret(name: string, previous: SecretState | undefined, next: SecretState): SecretChange | undefined {
  if (previous === undefined) return { kind: "added", name };
  const aspects = changedAspects(previous, next);
  return aspects.length === 0 ? undefined : { kind: "modified", name, aspects };
}

/** Secrets (or templates) the previous generation had and the new manifest no longer declares. */
export function removedSecrets(previousNames: Iterable<string>, currentNames: ReadonlySet<string>, subject?: Subject): SecretChange[] {
  const removed: SecretChange[] = [];
  for (const name of previousNames) if (!currentNames.has(name)) removed.push(subject === undefined ? { kind: "removed", name } : { kind: "removed", name, subject });
  return removed;
}

const VERB = { added: "adding", modified: "modifying", removed: "removing" } as const;

/** One line of the switch report, as sops-nix prints them: "modifying secret db/password: content, mode" ("modifying template app.toml: content"). */
export function describeChange(change: SecretChange, what: string = change.subject ?? "secret"): string {
  const line = `${VERB[change.kind]} ${what} ${change.name}`;
  return change.kind === "modified" ? `${line}: ${change.aspects.join(", ")}` : line;
}

/** A one-line summary for the unit's STATUS=: "2 added, 1 modified, 0 removed". */
export function summarizeChanges(changes: readonly SecretChange[]): string {
  const count = (kind: SecretChange["kind"]) => changes.filter((c) => c.kind === kind).length;
  return `${count("added")} added, ${count("modified")} modified, ${count("removed")} removed`;
}
