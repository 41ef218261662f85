// One session per plugin per activation: every file is offered, in one identity-v1 exchange, to
// every plugin that has an identity loaded (C2SP age-plugin.md: a client passes all stanzas to
// every connected plugin). The answers wait in each plugin's PluginAnswers until the file's own
// decryption walks its identities in identityPaths order (src/decrypt-all.ts).
import { lstatSync } from "node:fs";
import { dirname } from "node:path";
import { type PluginLimits, runIdentitySession } from "./plugin-session.js";
import { PluginIdentity } from "./plugin-identity.js";
import type { AgeIdentity, Stanza } from "./stanza.js";

/**
 * A plugin that reaches its device through a service's socket (age-plugin-yubikey through pcscd):
 * while `socket` is not there (early boot: pcscd.socket listens only after sysinit.target), the
 * plugin is not run, and the files only it could open wait for `unit` (docs/plugins.md).
 */
export interface PluginSocket {
  readonly plugin: string;
  readonly socket: string;
  readonly unit: string;
}

/**
 * Runs each plugin of `identities` once with the files' stanzas (undefined: a file whose header
 * did not parse, offered to no plugin). Plugins run one after the other, in the order their first
 * identity appears; a file one of them unwrapped is not offered to the next.
 */
export async function runPlugins(
  identities: readonly AgeIdentity[],
  files: readonly (readonly Stanza[] | undefined)[],
  onMessage: (plugin: string, message: string) => void,
  limits?: PluginLimits,
  sockets: readonly PluginSocket[] = [],
): Promise<void> {
  const plugins: PluginIdentity[][] = [];
  for (const identity of identities) {
    if (!(identity instanceof PluginIdentity)) continue;
    const group = plugins.find((g) => g[0]!.program === identity.program);
    if (group === undefined) plugins.push([identity]);
    else group.push(identity);
  }
  const unwrapped = new Set<number>();
  // A list, not a Set: agenixd keys no set by a string (docs/limits.md, the hash seed).
  const dirs: string[] = [];
  for (const g of plugins) if (!dirs.includes(dirname(g[0]!.program))) dirs.push(dirname(g[0]!.program));
  const path = dirs.join(":");
  for (const group of plugins) {
    const answers = group[0]!.answers;
    const offered: number[] = [];
    files.forEach((stanzas, i) => {
      if (stanzas !== undefined && !unwrapped.has(i)) offered.push(i);
    });
    answers.ran = true;
    if (offered.length === 0) continue;
    const needs = sockets.find((s) => s.plugin === group[0]!.name);
    if (needs !== undefined && !isSocket(needs.socket)) {
      answers.waitsFor = needs.unit;
      answers.failure = `waits for ${needs.unit}: ${needs.socket} is not there yet`;
      continue;
    }
    const result = await runIdentitySession({
      program: group[0]!.program,
      path,
      identities: group.map((id) => id.encoded),
      files: offered.map((i) => files[i]!),
      limits,
      onMessage: (m) => onMessage(group[0]!.name, m),
    });
    answers.failure = result.failure;
    for (const [j, answer] of result.answers) {
      const file = offered[j]!;
      answers.set(file, answer);
      if ("fileKey" in answer) unwrapped.add(file);
    }
  }
}

function isSocket(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}
