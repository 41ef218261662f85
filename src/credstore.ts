// Credentials (issue 15): secrets published so that a unit's `LoadCredential=<name>`, without a
// path, finds them. For a relative name systemd (src/core/exec-credential.c) tries
// /etc/credstore, /run/credstore, /usr/local/lib/credstore and /usr/lib/credstore in turn,
// opening `<dir>/<name>` with a plain open(2) that follows symlinks, as root, before the unit's
// user exists; it copies the bytes into the unit's own credentials directory, readable by the
// unit's (possibly dynamic) user.
//
// Layout: each generation holds `credstore/<id>` (root, 0400, in a root 0700 directory), so the
// plaintext lives on the ramfs and changes with the generation. `${credstore}` (/run/credstore)
// is a real directory, root's, made 0000 when missing: the mode systemd's own
// tmpfiles.d/credstore.conf gives it (`z /run/credstore 0000 root root`), so that only a process
// with CAP_DAC_OVERRIDE (PID 1, agenixd's unit) can list or open it, not every uid 0. It holds
// one symlink per credential, `<id>` -> `${secretsDir}/credstore/<id>`: swapping secretsDir
// switches every credential at once, and other tools' entries in the directory are never touched. An entry agenixd did not make is never replaced; a symlink is never followed.
import { readdirSync, unlinkSync } from "node:fs";
import { TrustError, lstatIn, makeDirs, readSymlinkIn, replaceWithSymlinkIn, writeNewFile, type Dir, type Dirs, type Ownership, type Trust } from "./secure-fs.js";
import { errnoCode } from "./errno.js";

/** The directory of each generation that holds the credentials' plaintext. */
export const CREDSTORE_ENTRY = "credstore";

/**
 * The credential name a secret is published under: its name, with "/" as "_" (systemd's own
 * mapping when it loads a directory: `LoadCredential=db:/dir` gives `db_password` for dir/password).
 */
export function credentialId(secretName: string): string {
  return secretName.includes("/") ? secretName.replaceAll("/", "_") : secretName;
}

/** Why systemd would refuse `id` as a credential name (credential_name_valid: a file name and an fd name), or undefined. */
export function credentialIdProblem(id: string): string | undefined {
  if (id === "" || id === "." || id === "..") return `"${id}" is not a file name`;
  if (id.length > 255) return "a credential name has at most 255 characters";
  if (!/^[\x20-\x7e]*$/.test(id)) return "a credential name has only printable ASCII characters";
  if (id.includes(":")) return `a credential name has no ":"`;
  return undefined;
}

/** Where a credential's plaintext is in a generation, relative to it. */
export function credentialEntry(secretName: string): string {
  return `${CREDSTORE_ENTRY}/${credentialId(secretName)}`;
}

/** Writes credentials into one new generation: `credstore/<id>`, created with its final owner and mode before a byte. */
export class CredentialWriter {
  private made = false;

  /** `own`: root's, 0400; `dirOwn`: root's, 0700. */
  constructor(
    private readonly genDir: string,
    private readonly own: Ownership,
    private readonly dirOwn: Ownership,
  ) {}

  write(secretName: string, data: Uint8Array): void {
    if (!this.made) {
      makeDirs(this.genDir, CREDSTORE_ENTRY, this.dirOwn);
      this.made = true;
    }
    writeNewFile(`${this.genDir}/${credentialEntry(secretName)}`, data, this.own);
  }
}

export interface CredstoreResult {
  /** Secrets whose link could not be made, and why. */
  readonly failed: readonly { readonly secret: string; readonly cause: string }[];
  /** Links removed: credentials no longer declared. */
  readonly removed: readonly string[];
}

/**
 * Makes `${credstore}/<id>` a symlink to `${secretsDir}/credstore/<id>` for each of `secrets`
 * (names), and removes agenixd's links for credentials no longer declared. `credstore` and every
 * directory above it must be root's (`trust`); it is made 0000 when missing unless `create` is
 * false (then a missing one is nothing to do). `entry`: the generation's directory the links point
 * into (`credstore.encrypted/sealed` for the sealed ones, src/credstore-encrypted.ts). A link whose target is in secretsDir is agenixd's
 * and may be replaced; anything else at a credential's name is left as it is, and that credential fails.
 */
export function linkCredstore(credstore: string, secretsDir: string, secrets: readonly string[], dirs: Dirs, trust: Trust, create = true, entry: string = CREDSTORE_ENTRY): CredstoreResult {
  let dir: Dir;
  try {
    dir = dirs.dir(credstore, trust, create ? { uid: -1, gid: -1, mode: 0o000 } : undefined);
  } catch (e) {
    if (!create && errnoCode(e) === "ENOENT") return { failed: [], removed: [] };
    const cause = `${e instanceof TrustError ? "refusing to publish it in" : "cannot publish it in"} ${credstore}: ${(e as Error).message}`;
    return { failed: secrets.map((secret) => ({ secret, cause })), removed: [] };
  }
  const ours = `${secretsDir}/`;
  const failed: { secret: string; cause: string }[] = [];
  const wanted = new Set<string>();
  for (const secret of secrets) {
    const id = credentialId(secret);
    wanted.add(id);
    const target = `${secretsDir}/${entry}/${id}`;
    const shown = `${credstore}/${id}`;
    try {
      dirs.removeStaleTemps(dir, id);
      const st = lstatIn(dir, id);
      if (st === undefined) {
        replaceWithSymlinkIn(dir, id, target);
      } else if (st.isSymbolicLink()) {
        const current = readSymlinkIn(dir, id);
        if (current === target) continue;
        if (current === undefined || !current.startsWith(ours)) throw new Error(`${shown} is a symlink to ${current ?? "?"}, which agenixd did not make; it is left as it is`);
        replaceWithSymlinkIn(dir, id, target);
      } else {
        throw new Error(`${shown} is ${st.isDirectory() ? "a directory" : "a file"} agenixd did not make; it is left as it is`);
      }
    } catch (e) {
      failed.push({ secret, cause: `cannot publish it as credential ${id}: ${(e as Error).message}` });
    }
  }
  return { failed, removed: removeStaleLinks(dir, `${ours}${entry}/`, wanted) };
}

/** Removes the symlinks into `${secretsDir}/<entry>/` that name no declared credential: only agenixd makes those. */
function removeStaleLinks(dir: Dir, prefix: string, wanted: ReadonlySet<string>): string[] {
  const removed: string[] = [];
  for (const entry of readdirSync(dir.op)) {
    if (wanted.has(entry)) continue;
    const target = readSymlinkIn(dir, entry);
    if (target === undefined || !target.startsWith(prefix) || target.slice(prefix.length) !== entry) continue;
    try {
      unlinkSync(`${dir.op}/${entry}`);
      removed.push(entry);
    } catch {
      // gone already, or not removable: it points at nothing once the generation is pruned
    }
  }
  return removed;
}
