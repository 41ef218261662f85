// The activation pipeline: validate → mount (in the background) → load identities → decrypt all → diff against the
// live generation → write generation → install targets → swap → prune → report changes, restart units → record state
// → notify. Each step lives in its own module; this file is the order. A dry run stops after the diff.
import { basename, dirname, relative } from "node:path";
import { fchmodSync, fchownSync } from "node:fs";
import { loadIdentities } from "./identities.js";
import { decryptAll, type Decrypted } from "./decrypt-all.js";
import { readAccounts, type Accounts } from "./accounts.js";
import { ensureRamfs, openMountPoint, ROOT_ONLY } from "./ramfs.js";
import { diffSecrets } from "./diff.js";
import { describeChange, removedSecrets, summarizeChanges, type SecretChange } from "./changes.js";
import { applyUnitActions, planUnitActions, type UnitActionResult, type UnitActions } from "./units.js";
import { carryChangeTimes, readState, writeState, type RunState } from "./state.js";
import { runCommand } from "./ramfs.js";
import { acquireLock } from "./lock.js";
import { createGeneration, currentGeneration, generationDir, openSecretsDirParent, pruneGenerations, swapSecretsDir } from "./generations.js";
import {
  Dirs, TrustError, makeDirs, readFileNoFollow, readSymlinkIn, replaceWithFile, replaceWithFileIn, replaceWithSymlink, replaceWithSymlinkIn,
  writeNewFile, type Ownership, type Trust,
} from "./secure-fs.js";
import { isWithin, type Manifest, type SecretSpec } from "./manifest.js";
import { fsError } from "./errno.js";
import type { Logger } from "./log.js";
import type { Notifier } from "./notify.js";

export type Phase = "all" | "users";

export interface SecretFailure {
  readonly name: string;
  readonly file: string;
  readonly cause: string;
  /** The previous generation's value was carried over. */
  readonly keptPrevious: boolean;
}

export interface ActivationResult {
  /** The generation secretsDir points at afterwards (undefined if there is none). */
  readonly generation: number | undefined;
  readonly swapped: boolean;
  readonly installed: readonly string[];
  readonly failed: readonly SecretFailure[];
  /** What this run changed (or, in a dry run, would change) against the generation that was live. */
  readonly changes: readonly SecretChange[];
  /** The units restarted and reloaded (or that would be), each once; none at first boot. */
  readonly units: UnitActions;
  readonly dryRun: boolean;
}

export interface ActivationOptions {
  /** Decrypt and compare with the live generation, and write nothing: no mount, no file, no unit. */
  readonly dryRun?: boolean;
  /** The manifest's own path, recorded for `agenixd status`. */
  readonly manifestPath?: string;
}

export interface ActivationContext {
  readonly log: Logger;
  readonly notify: Notifier;
  /** The machine by default; src/snapshot.ts's warm-up, built as an unprivileged user, passes its own. */
  readonly host?: Host;
}

/** What an activation takes from the machine besides the manifest's own paths. */
export interface Host {
  /** Owner of the mount point and the generation directories. */
  readonly rootUid: number;
  /** Makes the mount point a ramfs; called before identities load, awaited before the first write. */
  ensureRamfs(mountPoint: string): Promise<unknown>;
  readAccounts(): Accounts;
}

const MACHINE: Host = { rootUid: 0, ensureRamfs, readAccounts };

const NO_UNITS: UnitActions = { restart: [], reload: [] };

export async function activate(manifest: Manifest, phase: Phase, ctx: ActivationContext, options: ActivationOptions = {}): Promise<ActivationResult> {
  const { log, notify } = ctx;
  const host = ctx.host ?? MACHINE;
  const dryRun = options.dryRun ?? false;
  const selected = phase === "users" ? manifest.secrets.filter((s) => s.neededForUsers) : manifest.secrets;
  // A dry run takes no lock: it writes nothing, and reads the live generation, which a swap replaces atomically.
  const lock = dryRun
    ? undefined
    : await acquireLock(manifest.secretsMountPoint, { trust: { ...ROOT_ONLY, uids: [host.rootUid] }, onWait: () => log.info("waiting for another activation to finish") });
  const dirs = new Dirs();
  const unchanged = (generation: number | undefined, failed: readonly SecretFailure[] = []): ActivationResult => ({ generation, swapped: false, installed: [], failed, changes: [], units: NO_UNITS, dryRun });
  try {
    const previous = currentGeneration(manifest.secretsDir, manifest.secretsMountPoint);
    // What the last run recorded, if it describes the live generation: change times, and the units of a removed secret.
    const previousState = previous === undefined ? undefined : readState(manifest.secretsMountPoint);
    const lastRun = previousState?.generation === previous ? previousState : undefined;
    if (phase === "users" && selected.length === 0) {
      log.info("no secret is needed for users; nothing to do in this phase");
      if (!dryRun) notify.status("no secret is needed for users");
      notify.ready();
      return unchanged(previous);
    }

    // mount(8) runs while the identities load and the secrets decrypt; it is awaited before the first write.
    const ramfsReady = dryRun ? Promise.resolve() : host.ensureRamfs(manifest.secretsMountPoint);
    ramfsReady.catch(() => {}); // an early return below must not leave its failure unhandled

    notify.status(`loading identities`);
    const identities = await loadIdentities(manifest.identityPaths, (w) =>
      log.warn({ identity: w.path, cause: w.reason }, w.skipped ? "identity skipped" : "identity file is not root's alone"));
    notify.status(`decrypting ${selected.length} secrets`);
    const decrypted = await decryptAll(selected, identities);
    try {
      const accounts = host.readAccounts();
      const plan = resolveOwnership(decrypted, accounts);
      const failures = plan.filter((p): p is FailedSecret => !p.ok);
      if (selected.length > 0 && failures.length === selected.length && previous !== undefined) {
        for (const f of failures) log.error({ secret: f.secret.name, file: f.secret.file, cause: f.cause, keptPrevious: true }, "secret not installed");
        log.error({ generation: previous }, "no secret could be decrypted; keeping the current generation");
        const failed = failures.map((f) => failure(f, true));
        if (dryRun) return unchanged(previous, failed);
        notify.status(`all ${selected.length} secrets failed; generation ${previous} kept`);
        recordState(manifest, options, previous, lastRun, [], failed);
        notify.ready();
        return unchanged(previous, failed);
      }

      const prevDir = previous === undefined ? undefined : generationDir(manifest.secretsMountPoint, previous);
      const diff = diffSecrets(prevDir, plan.filter((p): p is PlannedSecret => p.ok).map((p) => ({ name: p.secret.name, plaintext: p.plaintext, own: p.own })));
      // Removed secrets are known from the last run's record (the users phase keeps every other secret as it is).
      const removed = phase === "all" && lastRun ? removedSecrets(lastRun.secrets.map((s) => s.name), new Set(manifest.secrets.map((s) => s.name))) : [];
      const changes = [...diff.changes, ...removed];
      // Nothing is restarted at first boot (no live generation): every unit starts after us anyway.
      const units = previous === undefined ? NO_UNITS : planUnitActions(changes, triggersOf(manifest, lastRun));
      if (dryRun) {
        const failed = failures.map((f) => failure(f, prevDir !== undefined));
        return { generation: previous, swapped: false, installed: [], failed, changes, units, dryRun };
      }
      if (phase === "users" && previous !== undefined && failures.length === 0 && changes.length === 0) {
        // Perl activation runs this phase at every switch; an unchanged password needs no new generation.
        log.info({ generation: previous, unchanged: diff.unchanged.length }, "secrets needed for users are unchanged");
        notify.status(`secrets needed for users unchanged in generation ${previous}`);
        notify.ready();
        return unchanged(previous);
      }

      await ramfsReady;
      const keysGid = accounts.gid("keys") ?? 0;
      const rootOnly: Trust = { ...ROOT_ONLY, uids: [host.rootUid] };
      const mountPoint = openMountPoint(manifest.secretsMountPoint, dirs, rootOnly);
      fchownSync(mountPoint.fd, host.rootUid, keysGid);
      fchmodSync(mountPoint.fd, 0o751);
      const secretsDirParent = openSecretsDirParent(manifest.secretsDir, dirs, rootOnly);
      const generation = (previous ?? 0) + 1;
      notify.status(`writing generation ${generation}`);
      const dirOwn: Ownership = { uid: host.rootUid, gid: keysGid, mode: 0o751 };
      const genDir = createGeneration(manifest.secretsMountPoint, generation, dirOwn);

      const { installed, failed } = writeGeneration({ manifest, plan, genDir, prevDir, dirOwn, generation, log, dirs, rootUid: host.rootUid });

      notify.status(`switching ${manifest.secretsDir} to generation ${generation}`);
      swapSecretsDir(manifest.secretsDir, secretsDirParent, genDir, dirs);
      const pruned = pruneGenerations(manifest.secretsMountPoint, generation, manifest.keepGenerations);
      log.info(
        { generation, installed: installed.length, failed: failed.length, ...countChanges(changes), unchanged: diff.unchanged.length, pruned },
        `generation ${generation} is active`,
      );
      // The switch report, one line per change: names and aspects, never a value.
      for (const c of changes) log.info({ secret: c.name, change: c.kind, ...(c.kind === "modified" ? { aspects: c.aspects } : {}) }, describeChange(c));
      const unitResults = await applyUnitActions(units, runCommand);
      logUnitResults(log, unitResults, changes, manifest, lastRun);
      recordState(manifest, options, generation, lastRun, changes, failed);
      notify.status(statusLine(generation, installed.length, failed, changes, unitResults));
      notify.ready();
      return { generation, swapped: true, installed, failed, changes, units, dryRun };
    } finally {
      for (const d of decrypted) if (d.ok) d.plaintext.fill(0);
    }
  } catch (e) {
    throw fsError(e); // errno codes in words
  } finally {
    dirs.close();
    await lock?.release();
  }
}

/** A changed secret's units: its declaration's, or for a removed one, those the last run recorded. */
function triggersOf(manifest: Manifest, lastRun: RunState | undefined) {
  const declared = new Map(manifest.secrets.map((s) => [s.name, s]));
  const recorded = new Map((lastRun?.secrets ?? []).map((s) => [s.name, s]));
  return (c: SecretChange) => (c.kind === "removed" ? recorded.get(c.name) : declared.get(c.name));
}

function countChanges(changes: readonly SecretChange[]): { added: string[]; modified: string[]; removed: string[] } {
  const names = (kind: SecretChange["kind"]) => changes.filter((c) => c.kind === kind).map((c) => c.name);
  return { added: names("added"), modified: names("modified"), removed: names("removed") };
}

/** One line per unit acted on, naming the secrets that called for it; a systemctl failure is an error line, not a failed activation. */
function logUnitResults(log: Logger, results: readonly UnitActionResult[], changes: readonly SecretChange[], manifest: Manifest, lastRun: RunState | undefined): void {
  const triggers = triggersOf(manifest, lastRun);
  for (const r of results) {
    for (const unit of r.units) {
      const secrets = changes.filter((c) => {
        const t = triggers(c);
        return t !== undefined && (r.action === "restart" ? t.restartUnits : t.reloadUnits).includes(unit);
      }).map((c) => c.name);
      if (r.error) log.error({ unit, action: r.action, secrets, cause: r.error }, `cannot ${r.action} ${unit}: ${r.error}`);
      else log.info({ unit, action: r.action, secrets }, `${r.action === "restart" ? "restarting" : "reloading"} ${unit} (changed: ${secrets.join(", ")})`);
    }
  }
}

function statusLine(generation: number, installed: number, failed: readonly SecretFailure[], changes: readonly SecretChange[], units: readonly UnitActionResult[]): string {
  let line = `generation ${generation}: ${installed} secrets installed`;
  if (failed.length > 0) line += `, ${failed.length} failed (${failed.map((f) => f.name).join(", ")})`;
  if (changes.length > 0) line += `; ${summarizeChanges(changes)}`;
  for (const r of units) line += `; ${r.error ? `could not ${r.action}` : r.action === "restart" ? "restarted" : "reloaded"} ${r.units.join(", ")}`;
  return line;
}

/** The record `agenixd status` reads: best effort, since the secrets themselves are already in place. */
function recordState(
  manifest: Manifest, options: ActivationOptions, generation: number | undefined, lastRun: RunState | undefined,
  changes: readonly SecretChange[], failures: readonly SecretFailure[],
): void {
  const now = new Date().toISOString();
  const changedAt = carryChangeTimes(lastRun, new Set(changes.map((c) => c.name)), now);
  try {
    writeState(manifest.secretsMountPoint, {
      version: 1,
      manifest: options.manifestPath ?? "",
      generation,
      finishedAt: now,
      secrets: manifest.secrets.map((s) => ({ name: s.name, path: s.path, restartUnits: s.restartUnits, reloadUnits: s.reloadUnits, changedAt: changedAt(s.name) })),
      failures: failures.map((f) => ({ name: f.name, file: f.file, cause: f.cause, keptPrevious: f.keptPrevious })),
    });
  } catch {
    // status then reports what it can; the activation's own result stands
  }
}

type PlannedSecret = { ok: true; secret: SecretSpec; plaintext: Buffer; own: Ownership };
type FailedSecret = { ok: false; secret: SecretSpec; cause: string };

interface GenerationInput {
  readonly manifest: Manifest;
  readonly plan: readonly (PlannedSecret | FailedSecret)[];
  readonly genDir: string;
  readonly prevDir: string | undefined;
  readonly dirOwn: Ownership;
  readonly generation: number;
  readonly log: Logger;
  readonly dirs: Dirs;
  readonly rootUid: number;
}

/**
 * Fills the new generation in manifest order: each decrypted secret and its target path; every
 * other secret (failed, or not selected in the users phase) as the previous generation had it.
 */
function writeGeneration(input: GenerationInput): { installed: string[]; failed: SecretFailure[] } {
  const { manifest, plan, genDir, prevDir, dirOwn, generation, log } = input;
  const installed: string[] = [];
  const failed: SecretFailure[] = [];
  const byName = new Map(plan.map((p) => [p.secret.name, p]));
  const knownDirs = new Set<string>();
  for (const secret of manifest.secrets) {
    const entry = byName.get(secret.name);
    let cause = entry && !entry.ok ? entry.cause : undefined;
    if (entry?.ok) {
      try {
        makeDirs(genDir, dirname(secret.name), dirOwn, knownDirs);
        writeNewFile(`${genDir}/${secret.name}`, entry.plaintext, entry.own);
      } catch (e) {
        cause = `cannot write it into the new generation: ${(e as Error).message}`;
      }
      if (cause === undefined) {
        try {
          installTarget(input, secret, entry.plaintext, entry.own);
          installed.push(secret.name);
          log.debug({ secret: secret.name, path: secret.path, generation }, "installed");
        } catch (e) {
          // The secret itself is in the new generation; only its extra path could not be made.
          const f = { name: secret.name, file: secret.file, cause: installFailure(secret, e), keptPrevious: false };
          failed.push(f);
          log.error({ secret: f.name, file: f.file, path: secret.path, cause: f.cause }, "secret not installed at its path");
        }
        continue;
      }
    }
    const carried = prevDir === undefined ? { kept: false } : carryOver(input, prevDir, secret);
    if (!isWithin(manifest.secretsDir, secret.path)) removeStaleTempsBeside(input, secret);
    if (carried.cause !== undefined) cause = cause === undefined ? carried.cause : `${cause}; ${carried.cause}`;
    if (cause !== undefined) {
      failed.push({ name: secret.name, file: secret.file, cause, keptPrevious: carried.kept });
      log.error({ secret: secret.name, file: secret.file, cause, keptPrevious: carried.kept }, "secret not installed");
    }
  }
  return { installed, failed };
}

function installFailure(secret: SecretSpec, e: unknown): string {
  const verb = e instanceof TrustError ? "refusing to install" : "cannot install";
  return `${verb} ${secret.name} at ${secret.path}: ${(e as Error).message}`;
}

function resolveOwnership(decrypted: readonly Decrypted[], accounts: Accounts): (PlannedSecret | FailedSecret)[] {
  return decrypted.map((d) => {
    if (!d.ok) return { ok: false, secret: d.secret, cause: d.cause };
    const uid = accounts.uid(d.secret.owner);
    const gid = accounts.gid(d.secret.group);
    if (uid === undefined) return { ok: false, secret: d.secret, cause: `unknown owner "${d.secret.owner}" (not in /etc/passwd)` };
    if (gid === undefined) return { ok: false, secret: d.secret, cause: `unknown group "${d.secret.group}" (not in /etc/group)` };
    return { ok: true, secret: d.secret, plaintext: d.plaintext, own: { uid, gid, mode: d.secret.mode } };
  });
}

function failure(f: FailedSecret, keptPrevious: boolean): SecretFailure {
  return { name: f.secret.name, file: f.secret.file, cause: f.cause, keptPrevious };
}

/**
 * Where `secret.path` lands: inside the new generation when it is below secretsDir, else outside,
 * through its parent directory held open (src/secure-fs.ts), which with every directory above it
 * must belong to root or the secret's owner.
 */
function installTarget(input: GenerationInput, secret: SecretSpec, plaintext: Buffer, own: Ownership): void {
  const { manifest, genDir, dirOwn, dirs, rootUid, log } = input;
  const linkTarget = `${manifest.secretsDir}/${secret.name}`;
  if (secret.path === linkTarget) return;
  if (isWithin(manifest.secretsDir, secret.path)) {
    const inGeneration = `${genDir}/${relative(manifest.secretsDir, secret.path)}`;
    makeDirs(genDir, dirname(relative(manifest.secretsDir, secret.path)), { uid: dirOwn.uid, gid: own.gid, mode: 0o751 });
    if (secret.symlink) replaceWithSymlink(inGeneration, linkTarget);
    else replaceWithFile(inGeneration, plaintext, own);
    return;
  }
  const trust: Trust = { uids: [rootUid, own.uid], gids: [own.gid], who: "root or the secret's owner" };
  const parent = dirs.dir(dirname(secret.path), trust, { uid: -1, gid: -1, mode: 0o755 });
  const name = basename(secret.path);
  const removed = dirs.removeStaleTemps(parent, name);
  if (removed.length > 0) log.info({ secret: secret.name, path: secret.path, removed }, "removed temporary files an interrupted activation left");
  if (secret.symlink) {
    if (readSymlinkIn(parent, name) !== linkTarget) replaceWithSymlinkIn(parent, name, linkTarget);
  } else {
    replaceWithFileIn(parent, name, plaintext, own);
  }
}

/**
 * For a secret not installed this time: the temp files a killed copy left beside its path go all
 * the same, if the way there is root's alone (a user's directory waits for the next install).
 */
function removeStaleTempsBeside(input: GenerationInput, secret: SecretSpec): void {
  const { dirs, rootUid, log } = input;
  try {
    const parent = dirs.dir(dirname(secret.path), { ...ROOT_ONLY, uids: [rootUid] });
    const removed = dirs.removeStaleTemps(parent, basename(secret.path));
    if (removed.length > 0) log.info({ secret: secret.name, path: secret.path, removed }, "removed temporary files an interrupted activation left");
  } catch {
    // best effort: missing or not root's
  }
}

/**
 * Copies a secret's file (bytes, owner, mode) and its in-secretsDir target from the previous
 * generation. A secret the previous generation lacks is not kept, without a cause; a copy that
 * fails is this secret's failure, never the activation's.
 */
function carryOver(input: GenerationInput, prevDir: string, secret: SecretSpec): { kept: boolean; cause?: string } {
  const { manifest, genDir, dirOwn } = input;
  let previous;
  try {
    previous = readFileNoFollow(`${prevDir}/${secret.name}`);
  } catch {
    return { kept: false };
  }
  try {
    try {
      makeDirs(genDir, dirname(secret.name), dirOwn);
      writeNewFile(`${genDir}/${secret.name}`, previous.data, previous.own);
    } catch (e) {
      return { kept: false, cause: `cannot carry over its previous value: ${(e as Error).message}` };
    }
    if (isWithin(manifest.secretsDir, secret.path) && secret.path !== `${manifest.secretsDir}/${secret.name}`) {
      try {
        installTarget(input, secret, previous.data, previous.own);
      } catch (e) {
        return { kept: true, cause: `its previous value is kept, but ${installFailure(secret, e)}` };
      }
    }
    return { kept: true };
  } finally {
    previous.data.fill(0);
  }
}
