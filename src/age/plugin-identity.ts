// An age plugin identity (AGE-PLUGIN-<NAME>-1…, C2SP age-plugin.md): key material or a pointer to
// it that only the binary age-plugin-<name> can use. agenixd runs each plugin once per activation
// for every file that reaches one of its identities (src/age/plugin-unwrap.ts); unwrapFileKey then
// answers from that session for the file being decrypted.
import { statSync } from "node:fs";
import { join } from "node:path";
import { decodeBech32 } from "./bech32.js";
import { AgeDecryptError, IdentityNotReadyError, IdentityUnavailableError } from "./errors.js";
import type { FileAnswer } from "./plugin-session.js";
import type { AgeIdentity, Stanza } from "./stanza.js";

const PREFIX = "age-plugin-";
/** Plugin names agenixd accepts: a file name, never a path. */
export const PLUGIN_NAME = /^[a-z0-9][a-z0-9._+-]{0,63}$/;

/** The answers of a plugin's session, shared by its identities, for the file being decrypted. */
export class PluginAnswers {
  readonly #byFile = new Map<number, FileAnswer>();
  failure: string | undefined;
  /** The unit the plugin waits for, when it was not run because that unit's socket is not there yet. */
  waitsFor: string | undefined;
  ran = false;
  current = -1;

  set(index: number, answer: FileAnswer): void {
    this.#byFile.set(index, answer);
  }

  get(index: number): FileAnswer | undefined {
    return this.#byFile.get(index);
  }

  /** Zeroes every file key it holds. */
  clear(): void {
    for (const a of this.#byFile.values()) if ("fileKey" in a) a.fileKey.fill(0);
    this.#byFile.clear();
  }
}

export class PluginIdentity implements AgeIdentity {
  readonly type = "plugin";

  private constructor(
    readonly source: string,
    /** The plugin's name, lower case ("yubikey"). */
    readonly name: string,
    /** age-plugin-<name>, by absolute path. */
    readonly program: string,
    /** The identity as written in its file, for add-identity. */
    readonly encoded: string,
    readonly answers: PluginAnswers,
  ) {}

  /**
   * Parses one AGE-PLUGIN-<NAME>-1… line and finds age-plugin-<name> in `pluginDirs` (the first
   * directory that has it). Throws a plain Error that never quotes the identity.
   * `answersFor` gives the one PluginAnswers of each program.
   */
  static fromBytes(line: Uint8Array, source: string, pluginDirs: readonly string[], answersFor: (program: string) => PluginAnswers): PluginIdentity {
    const { prefix, bytes } = decodeBech32(line);
    bytes.fill(0);
    if (!prefix.startsWith(PREFIX) || !prefix.endsWith("-")) throw new Error("malformed age plugin identity");
    const name = prefix.slice(PREFIX.length, -1);
    if (!PLUGIN_NAME.test(name)) throw new Error("age plugin identity has an unusable plugin name");
    const binary = `age-plugin-${name}`;
    const program = pluginDirs.map((dir) => join(dir, binary)).find(isFile);
    if (program === undefined) {
      throw new Error(pluginDirs.length === 0 ? `needs ${binary}, and age.plugins is empty` : `needs ${binary}, which no package of age.plugins has`);
    }
    return new PluginIdentity(source, name, program, Buffer.from(line).toString("latin1").toUpperCase(), answersFor(program));
  }

  unwrapFileKey(_stanzas: readonly Stanza[]): Uint8Array | null {
    const a = this.answers;
    if (!a.ran) throw new AgeDecryptError(`age plugin ${this.name} was not run for this file`);
    const answer = a.get(a.current);
    if (answer === undefined) {
      if (a.waitsFor !== undefined) throw new IdentityNotReadyError(`age plugin ${this.name} (identity ${this.source}) ${a.failure}`, a.waitsFor);
      if (a.failure !== undefined) throw new IdentityUnavailableError(`age plugin ${this.name} (identity ${this.source}) failed: ${a.failure}`);
      return null;
    }
    if ("error" in answer) throw new IdentityUnavailableError(`age plugin ${this.name} (identity ${this.source}) failed: ${answer.error}`);
    return Buffer.from(answer.fileKey);
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
