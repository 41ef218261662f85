// The activation pipeline, four stages: plan (validate, mount the ramfs, load identities, decrypt all,
// render templates in memory, diff against the live generation) → write the generation (secrets, credentials,
// templates; nothing outside it changes) → commit (the paths outside secretsDir, credstore links, swap, prune)
// → react (report changes, restart units, record state, notify). Each step lives in its own module; this file is
// the order. A plan that writes nothing (dry run, nothing to do, every secret failed) goes straight to reacting.
// What differs between the machine's system unit and a user's service is the Host passed in, never a second
// pipeline.
import { basename, dirname, relative } from "node:path";
import { fchmodSync, fchownSync } from "node:fs";
import { loadIdentities } from "./identities.js";
import { decryptAll, type Decrypted } from "./decrypt-all.js";
import { isoTime } from "./iso-time.js";
import { readAccounts, type Accounts } from "./accounts.js";
import { ensureRamfs, openMountPoint, ROOT_ONLY } from "./ramfs.js";
import { diffSecrets } from "./diff.js";
import { describeChange, removedSecrets, summarizeChanges, type SecretChange, type Subject } from "./changes.js";
import { applyUnitActions, planUnitActions, type UnitActionResult, type UnitActions } from "./units.js";
import { carryChangeTimes, markDeferred, readState, writeState, type RunState, type SecretRecord } from "./state.js";
import { currentBootId, lastFullRun, runRecordFields } from "./run-record.js";
import { RENDERED_ENTRY, renderTemplates, substitutionsFor, type RenderedTemplate } from "./templates.js";
import { CREDSTORE_ENTRY, CredentialWriter, credentialId, linkCredstore } from "./credstore.js";
import { ENCRYPTED_ENTRY, SEALED_DIR, diffEncryptedCredentials, writeEncryptedCredentials, type CredentialValue } from "./credstore-encrypted.js";
import { runCommand } from "./ramfs.js";
import { acquireLock } from "./lock.js";
import { createGeneration, currentGeneration, generationDir, openSecretsDirParent, pruneGenerations, swapSecretsDir } from "./generations.js";
import {
  Dirs, TrustError, makeDirs, readFileNoFollow, readSymlinkIn, replaceWithFile, replaceWithFileIn, replaceWithSymlink, replaceWithSymlinkIn,
  writeNewFile, type Ownership, type Trust,
} from "./secure-fs.js";
import { isEncryptedCredential, isWithin, type Manifest, type SecretSpec, type TemplateSpec } from "./manifest.js";
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
  /** Absent for a secret; a template's failure names the secrets it lacked in `cause`. */
  readonly subject?: "template";
  /**
   * Deferred rather than failed: only a plugin that waits for this unit (pcscd.socket at early
   * boot) could open it, and agenixd-deferred.service installs it once that unit is up (docs/plugins.md).
   */
  readonly waitsFor?: string;
}

export interface ActivationResult {
  /** The generation secretsDir points at afterwards (undefined if there is none). */
  readonly generation: number | undefined;
  readonly swapped: boolean;
  readonly installed: readonly string[];
  /** The templates rendered into the new generation. */
  readonly rendered: readonly string[];
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
  /** The mount point's mode: 0751 on the machine (group keys passes), 0700 for a user (src/user-host.ts). */
  readonly mountPointMode?: number;
  /** systemctl's leading arguments for restarts and reloads: `--user` for a user's manager. */
  readonly systemctlArgs?: readonly string[];
}

const MACHINE: Host = { rootUid: 0, ensureRamfs, readAccounts };

const NO_UNITS: UnitActions = { restart: [], reload: [] };

export async function activate(manifest: Manifest, phase: Phase, ctx: ActivationContext, options: ActivationOptions = {}): Promise<ActivationResult> {
  const host = ctx.host ?? MACHINE;
  const dryRun = options.dryRun ?? false;
  // A dry run takes no lock: it writes nothing, and reads the live generation, which a swap replaces atomically.
  const lock = dryRun
    ? undefined
    : await acquireLock(manifest.secretsMountPoint, { trust: trustOf(host), onWait: () => ctx.log.info("waiting for another activation to finish") });
  const dirs = new Dirs();
  try {
    const p = await plan(manifest, phase, ctx, host, dryRun, dirs);
    try {
      if (p.verdict !== "write") return await reactWithout(p, ctx, options);
      const generation = await writeGeneration(p, ctx, host, dirs);
      commit(p, generation, ctx, host, dirs);
      return await react(p, generation, ctx, host, options);
    } finally {
      zeroPlan(p);
    }
  } catch (e) {
    throw fsError(e); // errno codes in words
  } finally {
    dirs.close();
    await lock?.release();
  }
}

/** Who, besides root, may own the directories an activation goes through: the host's owner (root, or the user). */
function trustOf(host: Host): Trust {
  return { ...ROOT_ONLY, uids: [host.rootUid] };
}

/**
 * What plan() decided: "nothing" (no secret in this phase), "keep" (every secret failed: the
 * live generation stays), "unchanged" (the users phase has nothing new), "dry-run" (the diff is
 * the answer) or "write" a new generation.
 */
export type Verdict = "nothing" | "keep" | "unchanged" | "dry-run" | "write";

/** Everything decided before a byte is written: the plaintexts (zeroed by zeroPlan), the diff, the units. */
export interface Plan {
  readonly manifest: Manifest;
  readonly phase: Phase;
  readonly dryRun: boolean;
  readonly verdict: Verdict;
  readonly selected: readonly SecretSpec[];
  /** The live generation, and its directory. */
  readonly previous: number | undefined;
  readonly prevDir: string | undefined;
  /** What the last run recorded, if it describes the live generation. */
  readonly lastRun: RunState | undefined;
  /**
   * What this run compares with (removed secrets, their units): for a full run, this boot's last
   * full run, not the users phase's record (src/run-record.ts); undefined at first boot.
   */
  readonly reference: Pick<RunState, "secrets" | "templates"> | undefined;
  /** No full run yet in this boot (or no live generation): nothing is restarted. */
  readonly firstBoot: boolean;
  readonly bootId: string;
  readonly decrypted: readonly Decrypted[];
  readonly secrets: readonly (PlannedSecret | FailedSecret)[];
  readonly templates: readonly RenderedTemplate[];
  readonly accounts: Accounts | undefined;
  readonly failed: readonly SecretFailure[];
  readonly changes: readonly SecretChange[];
  readonly unchanged: { readonly secrets: number; readonly templates: number | undefined };
  readonly units: UnitActions;
  /** The mount (started in the background while the identities load), awaited before the first write. */
  readonly mounted: Promise<unknown>;
}

/**
 * Plan: validate the phase, load identities, decrypt, resolve owners, render templates, diff against the live generation.
 * Files are read through `dirs` (the activation's, which the write goes on with), else through a Dirs of its own.
 */
export async function plan(manifest: Manifest, phase: Phase, ctx: ActivationContext, host: Host = MACHINE, dryRun = false, dirs?: Dirs): Promise<Plan> {
  const { log, notify } = ctx;
  const selected = phase === "users" ? manifest.secrets.filter((s) => s.neededForUsers) : manifest.secrets;
  const previous = currentGeneration(manifest.secretsDir, manifest.secretsMountPoint);
  const previousState = previous === undefined ? undefined : readState(manifest.secretsMountPoint);
  const lastRun = previousState?.generation === previous ? previousState : undefined;
  const prevDir = previous === undefined ? undefined : generationDir(manifest.secretsMountPoint, previous);
  const bootId = currentBootId();
  const reference = phase === "all" ? lastFullRun(lastRun, bootId) : lastRun;
  const firstBoot = previous === undefined || reference === undefined;
  const base = {
    manifest, phase, dryRun, selected, previous, prevDir, lastRun, reference, firstBoot, bootId, decrypted: [], secrets: [], templates: [], accounts: undefined,
    failed: [], changes: [], unchanged: { secrets: 0, templates: undefined }, units: NO_UNITS, mounted: Promise.resolve(),
  } as const;
  if (phase === "users" && selected.length === 0) return { ...base, verdict: "nothing" };

  // The ramfs is mounted now (mount(2), src/ramfs.ts); a failure is awaited before the first write.
  const mounted = dryRun ? Promise.resolve() : host.ensureRamfs(manifest.secretsMountPoint);
  mounted.catch(() => {}); // a plan that writes nothing must not leave its failure unhandled

  notify.status(`loading identities`);
  // Identities, `.age` files and templates are read only from places the host's owner alone controls (src/secure-fs.ts).
  const reads = { dirs: dirs ?? new Dirs(), trust: trustOf(host) };
  let decrypted: Decrypted[] = [];
  let templates: RenderedTemplate[] = [];
  try {
    const identities = await loadIdentities(manifest.identityPaths, (w) =>
      log.warn({ identity: w.path, cause: w.reason }, w.skipped ? "identity skipped" : `identity file is not ${host.rootUid === 0 ? "root" : "the user"}'s alone`), reads, host.rootUid, manifest.pluginDirs);
    notify.status(`decrypting ${selected.length} secrets`);
    decrypted = await decryptAll(selected, identities, undefined, reads, { onMessage: (plugin, message) => log.info({ plugin, message }, "age plugin says"), sockets: manifest.pluginSockets });
    const accounts = host.readAccounts();
    const secrets = resolveOwnership(decrypted, accounts);
    const failures = secrets.filter((p): p is FailedSecret => !p.ok);
    const withValues = { ...base, mounted, decrypted, secrets, accounts };
    if (selected.length > 0 && failures.length === selected.length && previous !== undefined) {
      return { ...withValues, verdict: "keep", failed: failures.map((f) => failure(f, true)) };
    }
    // Templates are rendered with every secret's value, so in the full phase only; the users phase keeps them as they are.
    if (phase === "all" && manifest.templates.length > 0) {
      const values = new Map(secrets.filter((p): p is PlannedSecret => p.ok).map((p) => [p.secret.name, p.plaintext]));
      templates = deferTemplatesOfDeferred(renderTemplates(manifest.templates, substitutionsFor(manifest.secrets, (s) => values.get(s.name)), accounts, reads), failures);
    }
    const renderFailures = templates.filter((t): t is RenderedTemplate & { ok: false } => !t.ok);

    // An encrypted credential has no file to compare with: the live generation's digest of it tells (src/credstore-encrypted.ts).
    const ok = secrets.filter((p): p is PlannedSecret => p.ok);
    const sealed = ok.filter((p) => isEncryptedCredential(manifest, p.secret));
    const filed = diffSecrets(prevDir, ok.filter((p) => !isEncryptedCredential(manifest, p.secret)).map((p) => ({ name: p.secret.name, plaintext: p.plaintext, own: p.own })));
    const diff = sealed.length === 0 ? filed : mergeDiffs(ok, filed, diffEncryptedCredentials(prevDir, sealed.map((p) => ({ name: p.secret.name, plaintext: p.plaintext }))));
    const templateDiff = templates.length === 0 ? undefined : diffSecrets(prevDir && `${prevDir}/${RENDERED_ENTRY}`, templates.flatMap((t) => (t.ok ? [{ name: t.template.name, plaintext: t.data, own: t.own }] : [])), "template");
    // Removed secrets and templates are known from the last run's record (the users phase keeps every other secret as it is).
    const removed = phase === "all" && reference ? removedSecrets(reference.secrets.map((s) => s.name), new Set(manifest.secrets.map((s) => s.name))) : [];
    const removedTemplates = phase === "all" && reference?.templates ? removedSecrets(reference.templates.map((t) => t.name), new Set(manifest.templates.map((t) => t.name)), "template") : [];
    const changes = [...diff.changes, ...removed, ...(templateDiff?.changes ?? []), ...removedTemplates];
    // Nothing is restarted at first boot (no full run yet in this boot): every unit starts after us anyway.
    const units = firstBoot ? NO_UNITS : planUnitActions(changes, triggersOf(manifest, reference));
    const unchanged = { secrets: diff.unchanged.length, templates: templateDiff?.unchanged.length };
    const planned = { ...withValues, templates, changes, units, unchanged };
    if (dryRun) {
      const failed = [...failures.map((f) => failure(f, prevDir !== undefined)), ...renderFailures.map((t) => templateFailure(t.template, t.cause, prevDir !== undefined))];
      return { ...planned, verdict: "dry-run", failed };
    }
    // Perl activation runs the users phase at every switch; an unchanged password needs no new generation.
    if (phase === "users" && previous !== undefined && failures.length === 0 && changes.length === 0) return { ...planned, verdict: "unchanged" };
    return { ...planned, verdict: "write" };
  } catch (e) {
    for (const d of decrypted) if (d.ok) d.plaintext.fill(0);
    for (const t of templates) if (t.ok) t.data.fill(0);
    throw e;
  } finally {
    if (dirs === undefined) reads.dirs.close();
  }
}

/** Two diffs of disjoint secrets as one, in plan order. */
function mergeDiffs(order: readonly PlannedSecret[], a: ReturnType<typeof diffSecrets>, b: ReturnType<typeof diffSecrets>): ReturnType<typeof diffSecrets> {
  const at = new Map(order.map((p, i) => [p.secret.name, i]));
  const byPlan = (x: string, y: string) => at.get(x)! - at.get(y)!;
  return { changes: [...a.changes, ...b.changes].sort((x, y) => byPlan(x.name, y.name)), unchanged: [...a.unchanged, ...b.unchanged].sort(byPlan) };
}

/** Zeroes every plaintext and rendered template a plan holds. */
export function zeroPlan(p: Plan): void {
  for (const d of p.decrypted) if (d.ok) d.plaintext.fill(0);
  for (const t of p.templates) if (t.ok) t.data.fill(0);
}

/** A generation written but not yet live. */
export interface Written {
  readonly generation: number;
  readonly genDir: string;
  readonly input: GenerationInput;
  /** Written into the generation; commit takes out those whose path outside secretsDir it could not install. */
  readonly installed: string[];
  readonly rendered: string[];
  readonly failed: SecretFailure[];
  /** The secretsDir's parent, held open for the swap. */
  readonly secretsDirParent: ReturnType<typeof openSecretsDirParent>;
}

/**
 * Write: the mount point made ready (the mount awaited; owner and mode set), a new generation
 * directory, every secret and template in it with its final owner and mode, the credentials in
 * its credstore. Nothing outside the new generation changes: paths outside secretsDir are
 * installed by commit.
 */
export async function writeGeneration(p: Plan, ctx: ActivationContext, host: Host, dirs: Dirs): Promise<Written> {
  const { manifest, previous, prevDir } = p;
  const accounts = p.accounts!;
  await p.mounted;
  const keysGid = accounts.gid("keys") ?? 0;
  const trust = trustOf(host);
  const mountPoint = openMountPoint(manifest.secretsMountPoint, dirs, trust);
  fchownSync(mountPoint.fd, host.rootUid, keysGid);
  fchmodSync(mountPoint.fd, host.mountPointMode ?? 0o751);
  const secretsDirParent = openSecretsDirParent(manifest.secretsDir, dirs, trust);
  const generation = (previous ?? 0) + 1;
  ctx.notify.status(`writing generation ${generation}`);
  const dirOwn: Ownership = { uid: host.rootUid, gid: keysGid, mode: 0o751 };
  const genDir = createGeneration(manifest.secretsMountPoint, generation, dirOwn);
  const rootGid = host.rootUid === 0 ? 0 : process.getgid!();
  const rootOnly = { file: { uid: host.rootUid, gid: rootGid, mode: 0o400 }, dir: { uid: host.rootUid, gid: rootGid, mode: 0o700 } };
  // With an encrypted credstore every credential is sealed instead: no plaintext credential is written.
  const credentials = manifest.credstore === undefined || manifest.encryptedCredstore !== undefined ? undefined : new CredentialWriter(genDir, rootOnly.file, rootOnly.dir);

  const input: GenerationInput = { manifest, genDir, prevDir, dirOwn, generation, log: ctx.log, dirs, rootUid: host.rootUid, knownDirs: new Set(), outside: [] };
  const { installed, failed } = writeSecrets(input, p.secrets, credentials);
  if (manifest.encryptedCredstore !== undefined) {
    ctx.notify.status(`sealing credentials for generation ${generation}`);
    const sealed = await sealCredentials(input, p.secrets, rootOnly);
    installed.push(...sealed.installed);
    failed.push(...sealed.failed);
  }
  const rendered: string[] = [];
  if (manifest.templates.length > 0) {
    const written = writeTemplates(input, p.templates);
    rendered.push(...written.rendered);
    failed.push(...written.failed);
  }
  return { generation, genDir, input, installed, rendered, failed, secretsDirParent };
}

/**
 * Commit: the paths outside secretsDir installed, the credstore links, the atomic swap of
 * secretsDir to the new generation, the old generations pruned.
 */
export function commit(p: Plan, w: Written, ctx: ActivationContext, host: Host, dirs: Dirs): void {
  const { manifest } = p;
  installOutsideTargets(w);
  w.failed.push(...publishCredentials(w.input, trustOf(host), p.lastRun));
  ctx.notify.status(`switching ${manifest.secretsDir} to generation ${w.generation}`);
  swapSecretsDir(manifest.secretsDir, w.secretsDirParent, w.genDir, dirs);
  const pruned = pruneGenerations(manifest.secretsMountPoint, w.generation, manifest.keepGenerations);
  const { changes } = p;
  ctx.log.info(
    {
      generation: w.generation, installed: w.installed.length, failed: w.failed.filter((f) => f.waitsFor === undefined).length,
      ...(w.failed.some((f) => f.waitsFor !== undefined) ? { deferred: w.failed.filter((f) => f.waitsFor !== undefined).length } : {}), ...countChanges(changes.filter((c) => c.subject === undefined)), unchanged: p.unchanged.secrets, pruned,
      ...(p.unchanged.templates !== undefined ? { templates: { rendered: w.rendered.length, ...countChanges(changes.filter((c) => c.subject === "template")), unchanged: p.unchanged.templates } } : {}),
    },
    `generation ${w.generation} is active`,
  );
}

/** React: the switch report, the restarts and reloads, the record `agenixd status` reads, the notification. */
export async function react(p: Plan, w: Written, ctx: ActivationContext, host: Host, options: ActivationOptions): Promise<ActivationResult> {
  const { log, notify } = ctx;
  const { manifest, changes, units, lastRun, reference, firstBoot } = p;
  // The switch report, one line per change: names and aspects, never a value.
  for (const c of changes) log.info({ [c.subject ?? "secret"]: c.name, change: c.kind, ...(c.kind === "modified" ? { aspects: c.aspects } : {}) }, describeChange(c));
  const unitResults = await applyUnitActions(units, runCommand, undefined, host.systemctlArgs);
  logUnitResults(log, unitResults, changes, manifest, reference);
  recordState(manifest, options, p.phase, p.bootId, w.generation, lastRun, changes, w.failed);
  recordDeferred(p, w.failed, log);
  // At first boot every secret is new: the summary would only repeat the count.
  notify.status(statusLine(w.generation, w.installed.length, w.rendered.length, w.failed, firstBoot ? [] : changes, unitResults));
  notify.ready();
  return { generation: w.generation, swapped: true, installed: [...w.installed], rendered: [...w.rendered], failed: w.failed, changes, units, dryRun: false };
}

/** React to a plan that writes nothing: report, record the failures of a kept generation, notify. */
async function reactWithout(p: Plan, ctx: ActivationContext, options: ActivationOptions): Promise<ActivationResult> {
  const { log, notify } = ctx;
  const { previous, dryRun } = p;
  const result = (failed: readonly SecretFailure[] = []): ActivationResult => ({ generation: previous, swapped: false, installed: [], rendered: [], failed, changes: [], units: NO_UNITS, dryRun });
  switch (p.verdict) {
    case "nothing":
      log.info("no secret is needed for users; nothing to do in this phase");
      if (!dryRun) notify.status("no secret is needed for users");
      notify.ready();
      return result();
    case "keep":
      for (const f of p.failed) logNotInstalled(log, f);
      log.error({ generation: previous }, "no secret could be decrypted; keeping the current generation");
      if (dryRun) return result(p.failed);
      notify.status(`all ${p.selected.length} secrets failed; generation ${previous} kept`);
      recordState(p.manifest, options, "users", p.bootId, previous, p.lastRun, [], p.failed); // carries this boot's last full run forward
      recordDeferred(p, p.failed, log);
      notify.ready();
      return result(p.failed);
    case "unchanged":
      log.info({ generation: previous, unchanged: p.unchanged.secrets }, "secrets needed for users are unchanged");
      notify.status(`secrets needed for users unchanged in generation ${previous}`);
      notify.ready();
      return result();
    default:
      return { generation: previous, swapped: false, installed: [], rendered: [], failed: p.failed, changes: p.changes, units: p.units, dryRun };
  }
}

/** A changed secret's or template's units: its declaration's, or for a removed one, those the last run recorded. */
function triggersOf(manifest: Manifest, lastRun: Pick<RunState, "secrets" | "templates"> | undefined) {
  const declared = new Map(manifest.secrets.map((s) => [s.name, s]));
  const recorded = new Map((lastRun?.secrets ?? []).map((s) => [s.name, s]));
  const declaredTemplates = new Map(manifest.templates.map((t) => [t.name, t]));
  const recordedTemplates = new Map((lastRun?.templates ?? []).map((t) => [t.name, t]));
  return (c: SecretChange) =>
    c.subject === "template"
      ? (c.kind === "removed" ? recordedTemplates : declaredTemplates).get(c.name)
      : (c.kind === "removed" ? recorded : declared).get(c.name);
}

function countChanges(changes: readonly SecretChange[]): { added: string[]; modified: string[]; removed: string[] } {
  const names = (kind: SecretChange["kind"]) => changes.filter((c) => c.kind === kind).map((c) => c.name);
  return { added: names("added"), modified: names("modified"), removed: names("removed") };
}

/** One line per unit acted on, naming the secrets (and templates) that called for it; a systemctl failure is an error line, not a failed activation. */
function logUnitResults(log: Logger, results: readonly UnitActionResult[], changes: readonly SecretChange[], manifest: Manifest, lastRun: Pick<RunState, "secrets" | "templates"> | undefined): void {
  const triggers = triggersOf(manifest, lastRun);
  for (const r of results) {
    for (const unit of r.units) {
      const callers = changes.filter((c) => {
        const t = triggers(c);
        return t !== undefined && (r.action === "restart" ? t.restartUnits : t.reloadUnits).includes(unit);
      });
      const secrets = callers.filter((c) => c.subject === undefined).map((c) => c.name);
      const templates = callers.filter((c) => c.subject === "template").map((c) => c.name);
      const fields = { unit, action: r.action, secrets, ...(templates.length > 0 ? { templates } : {}) };
      const changed = [...secrets, ...templates.map((t) => `template ${t}`)].join(", ");
      if (r.error) log.error({ ...fields, cause: r.error }, `cannot ${r.action} ${unit}: ${r.error}`);
      else log.info(fields, `${r.action === "restart" ? "restarting" : "reloading"} ${unit} (changed: ${changed})`);
    }
  }
}

function statusLine(generation: number, installed: number, rendered: number, failed: readonly SecretFailure[], changes: readonly SecretChange[], units: readonly UnitActionResult[]): string {
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
  let line = `generation ${generation}: ${count(installed, "secret")} installed`;
  if (rendered > 0) line += `, ${count(rendered, "template")} rendered`;
  const named = (fs: readonly SecretFailure[]) => fs.map((f) => (f.subject ? `${f.subject} ${f.name}` : f.name)).join(", ");
  const notInstalled = failed.filter((f) => f.waitsFor === undefined);
  const deferred = failed.filter((f) => f.waitsFor !== undefined);
  const waitedFor = deferred.map((f) => f.waitsFor!).filter((u, i, all) => all.indexOf(u) === i);
  if (notInstalled.length > 0) line += `, ${notInstalled.length} failed (${named(notInstalled)})`;
  if (deferred.length > 0) line += `, ${deferred.length} deferred until ${waitedFor.join(", ")} (${named(deferred)})`;
  if (changes.length > 0) line += `; ${summarizeChanges(changes)}`;
  for (const r of units) line += `; ${r.error ? `could not ${r.action}` : r.action === "restart" ? "restarted" : "reloaded"} ${r.units.join(", ")}`;
  return line;
}

/** The record `agenixd status` reads: best effort, since the secrets themselves are already in place. */
function recordState(
  manifest: Manifest, options: ActivationOptions, phase: Phase, bootId: string, generation: number | undefined, lastRun: RunState | undefined,
  changes: readonly SecretChange[], failures: readonly SecretFailure[],
): void {
  const now = isoTime(Date.now());
  const changedAt = carryChangeTimes(lastRun?.secrets, new Set(changes.filter((c) => c.subject === undefined).map((c) => c.name)), now);
  const record = (s: SecretSpec | TemplateSpec, at: (name: string) => string): SecretRecord => ({ name: s.name, path: s.path, restartUnits: s.restartUnits, reloadUnits: s.reloadUnits, changedAt: at(s.name) });
  let templates: SecretRecord[] | undefined;
  if (manifest.templates.length > 0) {
    const templateChangedAt = carryChangeTimes(lastRun?.templates, new Set(changes.filter((c) => c.subject === "template").map((c) => c.name)), now);
    templates = manifest.templates.map((t) => record(t, templateChangedAt));
  }
  const secrets = manifest.secrets.map((s) => {
    if (!s.credential) return record(s, changedAt);
    const id = credentialId(s.name);
    // A sealed credential has no file of its own: what `agenixd status` shows is its link and blob.
    return isEncryptedCredential(manifest, s) ? { ...record(s, changedAt), path: `${manifest.encryptedCredstore!.dir}/${id}`, credential: id, sealed: true as const } : { ...record(s, changedAt), credential: id };
  });
  try {
    writeState(manifest.secretsMountPoint, {
      version: 1,
      manifest: options.manifestPath ?? "",
      generation,
      finishedAt: now,
      secrets,
      ...(templates ? { templates } : {}),
      ...runRecordFields(phase, bootId, lastRun, secrets, templates),
      ...(manifest.credstore === undefined ? {} : { credstore: manifest.credstore }),
      ...(manifest.encryptedCredstore === undefined ? {} : { encryptedCredstore: manifest.encryptedCredstore.dir }),
      failures: failures.map((f) => ({ name: f.name, file: f.file, cause: f.cause, keptPrevious: f.keptPrevious, ...(f.subject ? { subject: f.subject } : {}), ...(f.waitsFor ? { waitsFor: f.waitsFor } : {}) })),
    });
  } catch {
    // status then reports what it can; the activation's own result stands
  }
}

/** After a full run, whether agenixd-deferred.service has work (src/state.ts): best effort, like the record. */
function recordDeferred(p: Plan, failures: readonly SecretFailure[], log: Logger): void {
  if (p.phase !== "all") return;
  const units = failures.flatMap((f) => (f.waitsFor === undefined ? [] : [f.waitsFor])).filter((u, i, all) => all.indexOf(u) === i);
  try {
    markDeferred(p.manifest.secretsMountPoint, units);
  } catch (e) {
    log.warn({ cause: (e as Error).message }, "cannot record the deferred secrets for agenixd-deferred.service");
  }
}

type PlannedSecret = { ok: true; secret: SecretSpec; plaintext: Buffer; own: Ownership };
type FailedSecret = { ok: false; secret: SecretSpec; cause: string; waitsFor?: string };

interface GenerationInput {
  readonly manifest: Manifest;
  readonly genDir: string;
  readonly prevDir: string | undefined;
  readonly dirOwn: Ownership;
  readonly generation: number;
  readonly log: Logger;
  readonly dirs: Dirs;
  readonly rootUid: number;
  /** Directories of the generation made so far. */
  readonly knownDirs: Set<string>;
  /** Paths outside secretsDir of the items written, for commit to install. */
  readonly outside: OutsideTarget[];
}

/** An item's path outside secretsDir, with the value the generation got; `extra`: why its credential could not be written. */
interface OutsideTarget {
  readonly p: Placed;
  readonly data: Buffer;
  readonly own: Ownership;
  readonly extra: string | undefined;
}

/** A secret or a template, as the generation holds it: `entry` is its file there, relative. */
interface Placed {
  readonly subject: Subject;
  readonly item: SecretSpec | TemplateSpec;
  readonly entry: string;
}

/** What a secret or template gets this time: a value, a cause, or nothing (not part of this phase: kept as it was). */
type NewValue = { readonly ok: true; readonly data: Buffer; readonly own: Ownership } | { readonly ok: false; readonly cause: string; readonly waitsFor?: string | undefined } | undefined;

/**
 * Fills the new generation in manifest order: each decrypted secret and its target path; every
 * other secret (failed, or not selected in the users phase) as the previous generation had it.
 * A credential secret's value, whichever it is, is also written into the generation's credstore.
 */
function writeSecrets(input: GenerationInput, plan: readonly (PlannedSecret | FailedSecret)[], credentials: CredentialWriter | undefined): { installed: string[]; failed: SecretFailure[] } {
  const installed: string[] = [];
  const failed: SecretFailure[] = [];
  const byName = new Map(plan.map((p) => [p.secret.name, p]));
  for (const secret of input.manifest.secrets) {
    if (isEncryptedCredential(input.manifest, secret)) continue; // sealCredentials' own
    const entry = byName.get(secret.name);
    const value: NewValue = entry === undefined ? undefined : entry.ok ? { ok: true, data: entry.plaintext, own: entry.own } : { ok: false, cause: entry.cause, waitsFor: entry.waitsFor };
    const publish = credentials && secret.credential ? (data: Uint8Array) => publishCredential(credentials, secret, data) : undefined;
    const outcome = place(input, { subject: "secret", item: secret, entry: secret.name }, value, publish);
    if (outcome.installed) installed.push(secret.name);
    if (outcome.failure) failed.push(outcome.failure);
  }
  return { installed, failed };
}

function publishCredential(credentials: CredentialWriter, secret: SecretSpec, data: Uint8Array): string | undefined {
  try {
    credentials.write(secret.name, data);
    return undefined;
  } catch (e) {
    return `cannot write its credential ${credentialId(secret.name)} into the new generation: ${(e as Error).message}`;
  }
}

/**
 * The encrypted credentials, sealed into the new generation (src/credstore-encrypted.ts): in
 * manifest order, a new value, a failure's cause, or nothing (not in this phase) for each.
 */
async function sealCredentials(input: GenerationInput, plan: readonly (PlannedSecret | FailedSecret)[], own: { file: Ownership; dir: Ownership }): Promise<{ installed: string[]; failed: SecretFailure[] }> {
  const { manifest, genDir, prevDir, log } = input;
  const byName = new Map(plan.map((p) => [p.secret.name, p]));
  const secrets = manifest.secrets.filter((s) => isEncryptedCredential(manifest, s));
  const items = secrets.map((s) => {
    const p = byName.get(s.name);
    const value: CredentialValue = p === undefined ? undefined : p.ok ? { ok: true, data: p.plaintext } : { ok: false, cause: p.cause };
    return { name: s.name, value };
  });
  const installed: string[] = [];
  const failed: SecretFailure[] = [];
  let outcomes;
  try {
    outcomes = await writeEncryptedCredentials(genDir, prevDir, items, own.file, own.dir, { withKey: manifest.encryptedCredstore!.withKey });
  } catch (e) {
    const cause = `cannot write the sealed credentials into the new generation: ${(e as Error).message}`;
    outcomes = secrets.map((s) => ({ name: s.name, how: "none" as const, cause }));
  }
  const files = new Map(secrets.map((s) => [s.name, s.file]));
  for (const o of outcomes) {
    if (o.how === "sealed" || o.how === "reused") installed.push(o.name);
    if (o.cause === undefined) continue;
    const entry = byName.get(o.name);
    const waitsFor = entry !== undefined && !entry.ok ? entry.waitsFor : undefined;
    const f: SecretFailure = { name: o.name, file: files.get(o.name)!, cause: o.cause, keptPrevious: o.how === "kept", ...(waitsFor ? { waitsFor } : {}) };
    failed.push(f);
    logNotInstalled(log, f);
  }
  const sealedNow = outcomes.filter((o) => o.how === "sealed").map((o) => o.name);
  log.info({ sealed: sealedNow, reused: outcomes.filter((o) => o.how === "reused").length, failed: failed.length }, `sealed ${sealedNow.length} credentials with systemd-creds`);
  return { installed, failed };
}

/** Each template rendered, at `rendered/<name>` and its path; one that could not be rendered as the previous generation had it. */
function writeTemplates(input: GenerationInput, templates: readonly RenderedTemplate[]): { rendered: string[]; failed: SecretFailure[] } {
  const rendered: string[] = [];
  const failed: SecretFailure[] = [];
  const byName = new Map(templates.map((t) => [t.template.name, t]));
  for (const template of input.manifest.templates) {
    const t = byName.get(template.name);
    const value: NewValue = t === undefined ? undefined : t.ok ? { ok: true, data: t.data, own: t.own } : { ok: false, cause: t.cause, waitsFor: t.waitsFor };
    const outcome = place(input, { subject: "template", item: template, entry: `${RENDERED_ENTRY}/${template.name}` }, value);
    if (outcome.installed) rendered.push(template.name);
    if (outcome.failure) failed.push(outcome.failure);
  }
  return { rendered, failed };
}

/**
 * `${credstore}/<id>` links for every plaintext credential secret and `${encryptedCredstore.dir}/<id>`
 * links for every sealed one (and none for others); with a store other than the last run's, the
 * old one's links go. Failures are the secrets', never the activation's.
 */
function publishCredentials(input: GenerationInput, trust: Trust, lastRun: RunState | undefined): SecretFailure[] {
  const { manifest } = input;
  const credentials = manifest.secrets.filter((s) => s.credential);
  const sealed = manifest.encryptedCredstore !== undefined;
  return [
    ...publishIn(input, trust, manifest.credstore, lastRun?.credstore, sealed ? [] : credentials, CREDSTORE_ENTRY),
    ...publishIn(input, trust, manifest.encryptedCredstore?.dir, lastRun?.encryptedCredstore, sealed ? credentials : [], `${ENCRYPTED_ENTRY}/${SEALED_DIR}`),
  ];
}

function publishIn(input: GenerationInput, trust: Trust, store: string | undefined, old: string | undefined, secrets: readonly SecretSpec[], entry: string): SecretFailure[] {
  const { manifest, dirs, log } = input;
  const failed: SecretFailure[] = [];
  if (old !== undefined && old !== store) {
    try {
      const { removed } = linkCredstore(old, manifest.secretsDir, [], dirs, trust, false, entry);
      if (removed.length > 0) log.info({ credstore: old, removed }, "removed the credential links of the previous credstore");
    } catch (e) {
      log.warn({ credstore: old, cause: (e as Error).message }, "cannot remove the credential links of the previous credstore");
    }
  }
  if (store === undefined) return failed;
  let result;
  try {
    result = linkCredstore(store, manifest.secretsDir, secrets.map((s) => s.name), dirs, trust, true, entry);
  } catch (e) {
    result = { failed: secrets.map((s) => ({ secret: s.name, cause: `cannot publish it in ${store}: ${(e as Error).message}` })), removed: [] };
  }
  if (result.removed.length > 0) log.info({ credstore: store, removed: result.removed }, "removed the links of credentials no longer declared");
  const files = new Map(secrets.map((s) => [s.name, s.file]));
  for (const f of result.failed) {
    failed.push({ name: f.secret, file: files.get(f.secret)!, cause: f.cause, keptPrevious: false });
    log.error({ secret: f.secret, credstore: store, cause: f.cause }, "credential not published");
  }
  return failed;
}

/**
 * Writes one secret or template into the new generation and installs its path; without a new
 * value, carries over the previous generation's (bytes, owner, mode). `also` gets whichever value
 * it ends up with, and says why it could not use it.
 */
function place(input: GenerationInput, p: Placed, value: NewValue, also?: (data: Uint8Array) => string | undefined): { installed: boolean; failure?: SecretFailure } {
  const { genDir, prevDir, dirOwn, generation, log, knownDirs, manifest } = input;
  const { item, subject, entry } = p;
  const fail = (cause: string, keptPrevious: boolean): SecretFailure => itemFailure(p, cause, keptPrevious);
  let cause = value && !value.ok ? value.cause : undefined;
  if (value?.ok) {
    try {
      makeDirs(genDir, dirname(entry), dirOwn, knownDirs);
      writeNewFile(`${genDir}/${entry}`, value.data, value.own);
    } catch (e) {
      cause = `cannot write it into the new generation: ${(e as Error).message}`;
    }
    if (cause === undefined) {
      const extra = also?.(value.data);
      try {
        if (isWithin(manifest.secretsDir, item.path)) {
          installTarget(input, p, value.data, value.own);
          log.debug({ [subject]: item.name, path: item.path, generation }, "installed");
        } else {
          input.outside.push({ p, data: value.data, own: value.own, extra });
        }
      } catch (e) {
        // The file itself is in the new generation; only its extra path could not be made.
        const f = fail(installFailure(item, e) + (extra ? `; ${extra}` : ""), false);
        log.error({ [subject]: f.name, file: f.file, path: item.path, cause: f.cause }, `${subject} not installed at its path`);
        return { installed: false, failure: f };
      }
      if (extra === undefined) return { installed: true };
      const f = fail(extra, false);
      log.error({ [subject]: f.name, file: f.file, cause: f.cause }, `${subject} not installed`);
      return { installed: true, failure: f };
    }
  }
  const carried = prevDir === undefined ? { kept: false } : carryOver(input, prevDir, p, also);
  if (!isWithin(manifest.secretsDir, item.path)) removeStaleTempsBeside(input, p);
  if (carried.cause !== undefined) cause = cause === undefined ? carried.cause : `${cause}; ${carried.cause}`;
  if (cause === undefined) return { installed: false };
  const f = itemFailure(p, cause, carried.kept, value && !value.ok ? value.waitsFor : undefined);
  logNotInstalled(log, f);
  return { installed: false, failure: f };
}

/**
 * The paths outside secretsDir of the items just written (a copy, `symlink = false`, or a link to
 * its file in secretsDir), once the generation is complete. One that cannot be installed is that
 * item's failure: it stays in the generation, and leaves the installed (or rendered) list.
 */
function installOutsideTargets(w: Written): void {
  const { input } = w;
  for (const { p, data, own, extra } of input.outside) {
    const { item, subject } = p;
    try {
      installTarget(input, p, data, own);
      input.log.debug({ [subject]: item.name, path: item.path, generation: input.generation }, "installed");
    } catch (e) {
      const f = itemFailure(p, installFailure(item, e) + (extra ? `; ${extra}` : ""), false);
      input.log.error({ [subject]: f.name, file: f.file, path: item.path, cause: f.cause }, `${subject} not installed at its path`);
      const list = subject === "template" ? w.rendered : w.installed;
      const at = list.indexOf(item.name);
      if (at >= 0) list.splice(at, 1);
      const earlier = w.failed.findIndex((x) => x.name === item.name && x.subject === f.subject);
      if (earlier >= 0) w.failed.splice(earlier, 1, f);
      else w.failed.push(f);
    }
  }
}

/** A placed item's failure: a secret's, or a template's (marked as one). */
function itemFailure(p: Placed, cause: string, keptPrevious: boolean, waitsFor?: string): SecretFailure {
  const f = p.subject === "template" ? templateFailure(p.item, cause, keptPrevious) : { name: p.item.name, file: p.item.file, cause, keptPrevious };
  return waitsFor === undefined ? f : { ...f, waitsFor };
}

/** A secret or template that did not get its new value: an error, or a warning when it is only deferred. */
function logNotInstalled(log: Logger, f: SecretFailure): void {
  const subject = f.subject ?? "secret";
  const fields = { [subject]: f.name, file: f.file, cause: f.cause, keptPrevious: f.keptPrevious };
  if (f.waitsFor !== undefined) log.warn({ ...fields, waitsFor: f.waitsFor }, `${subject} deferred until ${f.waitsFor}`);
  else log.error(fields, `${subject} not installed`);
}

function templateFailure(template: SecretSpec | TemplateSpec, cause: string, keptPrevious: boolean): SecretFailure {
  return { name: template.name, file: template.file, cause, keptPrevious, subject: "template" };
}

function installFailure(item: SecretSpec | TemplateSpec, e: unknown): string {
  const verb = e instanceof TrustError ? "refusing to install" : "cannot install";
  return `${verb} ${item.name} at ${item.path}: ${(e as Error).message}`;
}

function resolveOwnership(decrypted: readonly Decrypted[], accounts: Accounts): (PlannedSecret | FailedSecret)[] {
  return decrypted.map((d) => {
    if (!d.ok) return { ok: false, secret: d.secret, cause: d.cause, ...(d.waitsFor ? { waitsFor: d.waitsFor } : {}) };
    const uid = accounts.uid(d.secret.owner);
    const gid = accounts.gid(d.secret.group);
    if (uid === undefined) return { ok: false, secret: d.secret, cause: `unknown owner "${d.secret.owner}" (not in /etc/passwd)` };
    if (gid === undefined) return { ok: false, secret: d.secret, cause: `unknown group "${d.secret.group}" (not in /etc/group)` };
    return { ok: true, secret: d.secret, plaintext: d.plaintext, own: { uid, gid, mode: d.secret.mode } };
  });
}

function failure(f: FailedSecret, keptPrevious: boolean): SecretFailure {
  return { name: f.secret.name, file: f.secret.file, cause: f.cause, keptPrevious, ...(f.waitsFor ? { waitsFor: f.waitsFor } : {}) };
}

/** A template that lacks only deferred secrets is deferred with them (until the first one's unit). */
function deferTemplatesOfDeferred(templates: RenderedTemplate[], failures: readonly FailedSecret[]): RenderedTemplate[] {
  return templates.map((t) => {
    if (t.ok || t.lacks === undefined) return t;
    const waits = t.lacks.map((name) => failures.find((f) => f.secret.name === name)?.waitsFor);
    const unit = waits[0];
    return unit !== undefined && waits.every((w) => w !== undefined) ? { ...t, waitsFor: unit } : t;
  });
}

/**
 * Where an item's `path` lands: inside the new generation when it is below secretsDir, else outside,
 * through its parent directory held open (src/secure-fs.ts), which with every directory above it
 * must belong to root or the item's owner.
 */
function installTarget(input: GenerationInput, p: Placed, data: Buffer, own: Ownership): void {
  const { manifest, genDir, dirOwn, dirs, rootUid, log } = input;
  const { item, subject } = p;
  const linkTarget = `${manifest.secretsDir}/${p.entry}`;
  if (item.path === linkTarget) return;
  if (isWithin(manifest.secretsDir, item.path)) {
    const inGeneration = `${genDir}/${relative(manifest.secretsDir, item.path)}`;
    makeDirs(genDir, dirname(relative(manifest.secretsDir, item.path)), { uid: dirOwn.uid, gid: own.gid, mode: 0o751 });
    if (item.symlink) replaceWithSymlink(inGeneration, linkTarget);
    else replaceWithFile(inGeneration, data, own);
    return;
  }
  const trust: Trust = { uids: [rootUid, own.uid], gids: [own.gid], who: `root or the ${subject}'s owner` };
  const parent = dirs.dir(dirname(item.path), trust, { uid: -1, gid: -1, mode: 0o755 });
  const name = basename(item.path);
  const removed = dirs.removeStaleTemps(parent, name);
  if (removed.length > 0) log.info({ [subject]: item.name, path: item.path, removed }, "removed temporary files an interrupted activation left");
  if (item.symlink) {
    if (readSymlinkIn(parent, name) !== linkTarget) replaceWithSymlinkIn(parent, name, linkTarget);
  } else {
    replaceWithFileIn(parent, name, data, own);
  }
}

/**
 * For an item not installed this time: the temp files a killed copy left beside its path go all
 * the same, if the way there is root's alone (a user's directory waits for the next install).
 */
function removeStaleTempsBeside(input: GenerationInput, p: Placed): void {
  const { dirs, rootUid, log } = input;
  const { item, subject } = p;
  try {
    const parent = dirs.dir(dirname(item.path), { ...ROOT_ONLY, uids: [rootUid] });
    const removed = dirs.removeStaleTemps(parent, basename(item.path));
    if (removed.length > 0) log.info({ [subject]: item.name, path: item.path, removed }, "removed temporary files an interrupted activation left");
  } catch {
    // best effort: missing or not root's
  }
}

/**
 * Copies an item's file (bytes, owner, mode) and its in-secretsDir target from the previous
 * generation. An item the previous generation lacks is not kept, without a cause; a copy that
 * fails is this item's failure, never the activation's.
 */
function carryOver(input: GenerationInput, prevDir: string, p: Placed, also?: (data: Uint8Array) => string | undefined): { kept: boolean; cause?: string } {
  const { manifest, genDir, dirOwn, knownDirs } = input;
  const { item, entry } = p;
  let previous;
  try {
    previous = readFileNoFollow(`${prevDir}/${entry}`);
  } catch {
    return { kept: false };
  }
  try {
    try {
      makeDirs(genDir, dirname(entry), dirOwn, knownDirs);
      writeNewFile(`${genDir}/${entry}`, previous.data, previous.own);
    } catch (e) {
      return { kept: false, cause: `cannot carry over its previous value: ${(e as Error).message}` };
    }
    const extra = also?.(previous.data);
    if (isWithin(manifest.secretsDir, item.path) && item.path !== `${manifest.secretsDir}/${entry}`) {
      try {
        installTarget(input, p, previous.data, previous.own);
      } catch (e) {
        return { kept: true, cause: `its previous value is kept, but ${installFailure(item, e)}${extra ? `; ${extra}` : ""}` };
      }
    }
    return extra === undefined ? { kept: true } : { kept: true, cause: extra };
  } finally {
    previous.data.fill(0);
  }
}
