// The manifest: the contract between the NixOS module and the service (docs/manifest.md).
import { readFileSync } from "node:fs";
import { posix } from "node:path";
import { describeError } from "./errno.js";
import { parseMode } from "./mode.js";
import { isUnitName } from "./units.js";
import { CREDSTORE_ENTRY, credentialId, credentialIdProblem } from "./credstore.js";
import { RENDERED_ENTRY } from "./templates.js";
import type { PluginSocket } from "./age/plugin-unwrap.js";
import { PLUGIN_NAME } from "./age/plugin-identity.js";
import { ENCRYPTED_ENTRY, WITH_KEYS, type WithKey } from "./credstore-encrypted.js";

/** One secret as the NixOS module writes it into the manifest (docs/manifest.md), before validation. */
export interface SecretEntry {
  name: string;
  file: string;
  path: string;
  mode: string;
  owner: string;
  group: string;
  symlink: boolean;
  neededForUsers?: boolean;
  /** Version 2. */
  restartUnits?: string[];
  reloadUnits?: string[];
  /** Version 2, templates and credentials (issue 15). */
  placeholder?: string;
  trim?: boolean;
  credential?: boolean;
}

/** One template as the NixOS module writes it (version 2), before validation. */
export interface TemplateEntry {
  name: string;
  file: string;
  path?: string;
  mode?: string;
  owner?: string;
  group?: string;
  symlink?: boolean;
  restartUnits?: string[];
  reloadUnits?: string[];
}

/** The manifest file as the NixOS module writes it, before validation. */
export interface ManifestFile {
  version: 1 | 2;
  secretsDir: string;
  secretsMountPoint: string;
  identityPaths: string[];
  keepGenerations: number;
  secrets: SecretEntry[];
  /** Version 2. */
  pluginDirs?: string[];
  /** Version 2. */
  credstore?: string | null;
  /** Version 2, issue 24: where credentials are published sealed, instead of in plaintext in `credstore`. */
  encryptedCredstore?: { dir: string; withKey: string } | null;
  templates?: TemplateEntry[];
  /** Version 2. */
  pluginSockets?: { plugin: string; socket: string; unit: string }[];
}

/** What secrets and templates share: a file in the generation, where it is wanted, its owner and mode, its units. */
export interface InstalledSpec {
  /** Relative name below the generation (secrets) or below its `rendered/` (templates); may contain "/". */
  readonly name: string;
  /** The encrypted .age file (secrets) or the template text, a store path (templates). */
  readonly file: string;
  /** Where the user wants it; below secretsDir unless overridden. */
  readonly path: string;
  readonly mode: number;
  /** User name or numeric id. */
  readonly owner: string;
  /** Group name or numeric id. */
  readonly group: string;
  readonly symlink: boolean;
  /** Units restarted (try-restart) when it is added, modified or removed; never at first boot. */
  readonly restartUnits: readonly string[];
  /** Units reloaded (try-reload-or-restart) likewise, unless they are restarted anyway. */
  readonly reloadUnits: readonly string[];
}

export interface SecretSpec extends InstalledSpec {
  /** Installed in the early phase, before users are created (a user's hashedPasswordFile). */
  readonly neededForUsers: boolean;
  /** The text that stands for this secret in templates (the module's `config.age.placeholder.<name>`); none: not usable in templates. */
  readonly placeholder: string | undefined;
  /** Substituted into templates without one trailing "\n" or "\r\n"; the secret's own file keeps every byte. */
  readonly trim: boolean;
  /** Also published in `credstore` for systemd's LoadCredential=. */
  readonly credential: boolean;
}

/** A config file with placeholders, rendered into each generation at `rendered/<name>`. */
export type TemplateSpec = InstalledSpec;

export interface Manifest {
  readonly version: 1 | 2;
  readonly secretsDir: string;
  readonly secretsMountPoint: string;
  readonly identityPaths: readonly string[];
  readonly keepGenerations: number;
  readonly secrets: readonly SecretSpec[];
  /** Where credential secrets are published for LoadCredential=<name> (docs/manifest.md); undefined: nowhere. */
  readonly credstore: string | undefined;
  /**
   * When set, every credential secret is sealed with `systemd-creds encrypt --with-key=<withKey>`
   * and published as `${dir}/<id>` for LoadCredentialEncrypted=<id>; it then has no file in
   * secretsDir and no plaintext in `credstore` (src/credstore-encrypted.ts).
   */
  readonly encryptedCredstore: EncryptedCredstore | undefined;
  readonly templates: readonly TemplateSpec[];
  /** The bin directories of age.plugins, where age-plugin-<name> is looked up (docs/plugins.md). */
  readonly pluginDirs: readonly string[];
  /** Plugins that reach their device through a service's socket: not run, and their secrets deferred, while it is missing. */
  readonly pluginSockets: readonly PluginSocket[];
}

export interface EncryptedCredstore {
  readonly dir: string;
  readonly withKey: WithKey;
}

/** Whether a secret is published sealed (and so has no file of its own). */
export function isEncryptedCredential(manifest: Pick<Manifest, "encryptedCredstore">, secret: Pick<SecretSpec, "credential">): boolean {
  return secret.credential && manifest.encryptedCredstore !== undefined;
}

export class ManifestError extends Error {
  override name = "ManifestError";
}

/**
 * The fields each manifest version allows (docs/manifest.md); anything else is refused, so a typo
 * (`onwer`) cannot silently fall back to a default. A new version adds its row.
 */
export const MANIFEST_FIELDS: Readonly<Record<number, { readonly manifest: readonly string[]; readonly secret: readonly string[]; readonly template: readonly string[] }>> = {
  1: {
    manifest: ["version", "secretsDir", "secretsMountPoint", "identityPaths", "keepGenerations", "secrets"],
    secret: ["name", "file", "path", "mode", "owner", "group", "symlink", "neededForUsers"],
    template: [],
  },
  2: {
    manifest: ["version", "secretsDir", "secretsMountPoint", "identityPaths", "keepGenerations", "secrets", "credstore", "encryptedCredstore", "templates", "pluginDirs", "pluginSockets"],
    secret: ["name", "file", "path", "mode", "owner", "group", "symlink", "neededForUsers", "restartUnits", "reloadUnits", "placeholder", "trim", "credential"],
    template: ["name", "file", "path", "mode", "owner", "group", "symlink", "restartUnits", "reloadUnits"],
  },
};

/** Reads and validates the manifest. Synchronous: it is the first thing a start does, and node:fs/promises would cost a thread pool start-up. */
export function readManifest(file: string, expand: (json: unknown) => unknown = (j) => j): Manifest {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ManifestError(`cannot read the manifest: ${describeError(e, file)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ManifestError(`manifest ${file} is not valid JSON: ${(e as Error).message}`);
  }
  try {
    json = expand(json); // a user's manifest: ${XDG_RUNTIME_DIR} made absolute (src/user-host.ts)
  } catch (e) {
    throw new ManifestError(`manifest ${file}: ${(e as Error).message}`);
  }
  return parseManifest(json);
}

export function parseManifest(json: unknown): Manifest {
  const root = expectObject(json, "manifest");
  const version = root.version;
  if (typeof version !== "number" || !Object.hasOwn(MANIFEST_FIELDS, version)) fail("version", `expected ${Object.keys(MANIFEST_FIELDS).join(" or ")}, got ${show(version)}`);
  const fields = MANIFEST_FIELDS[version]!;
  refuseUnknownFields(root, fields.manifest, "");
  const secretsDir = absolutePath(root.secretsDir, "secretsDir");
  const secretsMountPoint = absolutePath(root.secretsMountPoint, "secretsMountPoint");
  if (secretsDir === "/" || secretsMountPoint === "/") fail("secretsDir", "must not be /");
  if (isWithin(secretsDir, secretsMountPoint) || isWithin(secretsMountPoint, secretsDir) || secretsDir === secretsMountPoint) {
    fail("secretsMountPoint", `must not overlap secretsDir (${secretsDir})`);
  }
  if (!Array.isArray(root.identityPaths)) fail("identityPaths", `expected a list of paths, got ${show(root.identityPaths)}`);
  const identityPaths = root.identityPaths.map((p, i) => absolutePath(p, `identityPaths[${i}]`));
  if (!Array.isArray(root.pluginDirs ?? [])) fail("pluginDirs", `expected a list of paths, got ${show(root.pluginDirs)}`);
  const pluginDirs = ((root.pluginDirs ?? []) as unknown[]).map((p, i) => absolutePath(p, `pluginDirs[${i}]`));
  if (!Array.isArray(root.pluginSockets ?? [])) fail("pluginSockets", `expected a list, got ${show(root.pluginSockets)}`);
  const pluginSockets = ((root.pluginSockets ?? []) as unknown[]).map((p, i) => parsePluginSocket(p, `pluginSockets[${i}]`));
  const keepGenerations = root.keepGenerations ?? 1;
  if (!Number.isInteger(keepGenerations) || (keepGenerations as number) < 1) {
    fail("keepGenerations", `expected an integer ≥ 1, got ${show(root.keepGenerations)}`);
  }
  if (!Array.isArray(root.secrets)) fail("secrets", `expected a list, got ${show(root.secrets)}`);

  const secrets = root.secrets.map((s, i) => parseSecret(s, `secrets[${i}]`, fields.secret, secretsDir, secretsMountPoint));
  const names = new Map<string, number>();
  secrets.forEach((s, i) => {
    const other = names.get(s.name);
    if (other !== undefined) fail(`secrets[${i}].name`, `"${s.name}" is also the name of secrets[${other}]`);
    names.set(s.name, i);
  });
  for (const s of secrets) {
    // A name that is a directory of another name ("a" and "a/b") cannot both be files.
    for (let slash = s.name.indexOf("/"); slash > 0; slash = s.name.indexOf("/", slash + 1)) {
      const parent = s.name.slice(0, slash);
      if (names.has(parent)) fail("secrets", `"${parent}" is a file but "${s.name}" needs it to be a directory`);
    }
  }
  const credstore = parseCredstore(root.credstore ?? null, secretsDir, secretsMountPoint);
  const encryptedCredstore = parseEncryptedCredstore(root.encryptedCredstore ?? null, secretsDir, secretsMountPoint, credstore);
  if (!Array.isArray(root.templates ?? [])) fail("templates", `expected a list, got ${show(root.templates)}`);
  const templates = ((root.templates ?? []) as unknown[]).map((t, i) => parseTemplate(t, `templates[${i}]`, fields.template, secretsDir, secretsMountPoint));
  if (version >= 2) checkTemplateFeatures(secrets, templates, secretsDir, credstore, encryptedCredstore);
  refuseOverlaps(secrets, templates, secretsDir, encryptedCredstore?.dir ?? credstore);
  return { version: version as 1 | 2, secretsDir, secretsMountPoint, identityPaths, keepGenerations: keepGenerations as number, secrets, credstore, encryptedCredstore, templates, pluginDirs, pluginSockets };
}

function parseEncryptedCredstore(value: unknown, secretsDir: string, mountPoint: string, credstore: string | undefined): EncryptedCredstore | undefined {
  if (value === null) return undefined;
  const o = expectObject(value, "encryptedCredstore");
  refuseUnknownFields(o, ["dir", "withKey"], "encryptedCredstore.");
  const dir = absolutePath(o.dir, "encryptedCredstore.dir");
  if (dir === "/") fail("encryptedCredstore.dir", "must not be /");
  for (const [other, field] of [[secretsDir, "secretsDir"], [mountPoint, "secretsMountPoint"], ...(credstore === undefined ? [] : [[credstore, "credstore"]])] as const) {
    if (dir === other || isWithin(other, dir) || isWithin(dir, other)) fail("encryptedCredstore.dir", `must not overlap ${field} (${other})`);
  }
  if (typeof o.withKey !== "string" || !(WITH_KEYS as readonly string[]).includes(o.withKey)) {
    fail("encryptedCredstore.withKey", `expected one of ${WITH_KEYS.map((k) => `"${k}"`).join(", ")}, got ${show(o.withKey)}`);
  }
  return { dir, withKey: o.withKey as WithKey };
}

function parsePluginSocket(value: unknown, where: string): PluginSocket {
  const o = expectObject(value, where);
  refuseUnknownFields(o, ["plugin", "socket", "unit"], `${where}.`);
  if (typeof o.plugin !== "string" || !PLUGIN_NAME.test(o.plugin)) fail(`${where}.plugin`, `expected an age plugin's name (age-plugin-<name>), got ${show(o.plugin)}`);
  const socket = absolutePath(o.socket, `${where}.socket`);
  if (typeof o.unit !== "string" || !isUnitName(o.unit) || !/\.(socket|service|target)$/.test(o.unit)) fail(`${where}.unit`, `expected a .socket, .service or .target unit name, got ${show(o.unit)}`);
  return { plugin: o.plugin, socket, unit: o.unit };
}

function parseCredstore(value: unknown, secretsDir: string, mountPoint: string): string | undefined {
  if (value === null) return undefined;
  const credstore = absolutePath(value, "credstore");
  if (credstore === "/") fail("credstore", "must not be /");
  for (const [dir, field] of [[secretsDir, "secretsDir"], [mountPoint, "secretsMountPoint"]] as const) {
    if (credstore === dir || isWithin(dir, credstore) || isWithin(credstore, dir)) fail("credstore", `must not overlap ${field} (${dir})`);
  }
  return credstore;
}

/**
 * Placeholders are unique; a credential needs a credstore and a name systemd takes; and when
 * templates or credentials exist, `rendered` and `credstore` in a generation are agenixd's own:
 * no secret's name, and no path inside secretsDir, may lie there (a template's own rendered file aside).
 */
function checkTemplateFeatures(secrets: readonly SecretSpec[], templates: readonly TemplateSpec[], secretsDir: string, credstore: string | undefined, encrypted: EncryptedCredstore | undefined): void {
  const placeholders = new Map<string, number>();
  let credentials = false;
  secrets.forEach((s, i) => {
    if (s.placeholder !== undefined) {
      const other = placeholders.get(s.placeholder);
      if (other !== undefined) fail(`secrets[${i}].placeholder`, `${show(s.placeholder)} is also the placeholder of secrets[${other}] ("${secrets[other]!.name}")`);
      placeholders.set(s.placeholder, i);
    }
    if (s.credential) {
      credentials = true;
      if (credstore === undefined) fail(`secrets[${i}].credential`, "is true, but the manifest has no credstore");
      const problem = credentialIdProblem(credentialId(s.name));
      if (problem !== undefined) fail(`secrets[${i}].credential`, `"${s.name}" cannot be published as a systemd credential: ${problem}`);
      if (encrypted !== undefined) {
        // A sealed credential has no file of its own: nothing can be at its path, nor be a user's password file.
        if (s.path !== `${secretsDir}/${s.name}`) fail(`secrets[${i}].path`, `is ${s.path}, but "${s.name}" is an encrypted credential, which has no file outside ${encrypted.dir}; leave path at its default or set credential = false`);
        if (s.neededForUsers) fail(`secrets[${i}].neededForUsers`, `is true, but "${s.name}" is an encrypted credential, which has no file a user's password could be read from`);
      }
    }
  });
  const reserved = new Map<string, string>();
  if (templates.length > 0) reserved.set(RENDERED_ENTRY, "templates are rendered");
  if (credentials) reserved.set(CREDSTORE_ENTRY, "credentials are published");
  if (credentials && encrypted !== undefined) reserved.set(ENCRYPTED_ENTRY, "credentials are sealed");
  if (reserved.size === 0) return;
  const refuse = (relative: string, where: string) => {
    const first = relative.split("/", 1)[0]!;
    const why = reserved.get(first);
    if (why !== undefined) fail(where, `"${relative}" is in "${first}/", where ${why} in each generation; choose another name`);
  };
  secrets.forEach((s, i) => {
    refuse(s.name, `secrets[${i}].name`);
    if (isWithin(secretsDir, s.path)) refuse(s.path.slice(secretsDir.length + 1), `secrets[${i}].path`);
  });
  templates.forEach((t, i) => {
    if (isWithin(secretsDir, t.path) && t.path !== renderedPath(secretsDir, t.name)) refuse(t.path.slice(secretsDir.length + 1), `templates[${i}].path`);
  });
}

/** Where a template is rendered: `${secretsDir}/rendered/<name>`. */
export function renderedPath(secretsDir: string, name: string): string {
  return `${secretsDir}/${RENDERED_ENTRY}/${name}`;
}

/** Where something puts a file: a field of a secret or template, and the words for it. */
interface Place {
  readonly field: string;
  readonly what: string;
}

/**
 * Every file a secret or template makes (a secret's file in secretsDir, a template's rendered
 * file, either's `path`, a credential's entry in credstore) must be its own: no two may be the
 * same, and none may lie below another (which would need a file to be a directory). Otherwise
 * one would silently replace another, or fail at every activation.
 */
function refuseOverlaps(secrets: readonly SecretSpec[], templates: readonly TemplateSpec[], secretsDir: string, credstore: string | undefined): void {
  const taken = new Map<string, Place>();
  const take = (file: string, place: Place) => {
    const other = taken.get(file);
    if (other !== undefined) fail(place.field, `${file} is also ${other.what}`);
    taken.set(file, place);
  };
  secrets.forEach((s, index) => {
    const inDir = `${secretsDir}/${s.name}`;
    const who = `secrets[${index}] ("${s.name}")`;
    take(inDir, { field: `secrets[${index}].name`, what: `where ${who} is installed in secretsDir` });
    if (s.path !== inDir) take(s.path, { field: `secrets[${index}].path`, what: `the path of ${who}` });
  });
  templates.forEach((t, index) => {
    const rendered = renderedPath(secretsDir, t.name);
    const who = `templates[${index}] ("${t.name}")`;
    take(rendered, { field: `templates[${index}].name`, what: `where ${who} is rendered in secretsDir` });
    if (t.path !== rendered) take(t.path, { field: `templates[${index}].path`, what: `the path of ${who}` });
  });
  if (credstore !== undefined) {
    secrets.forEach((s, index) => {
      if (s.credential) take(`${credstore}/${credentialId(s.name)}`, { field: `secrets[${index}].credential`, what: `where secrets[${index}] ("${s.name}") is published as a credential` });
    });
  }
  for (const [file, at] of taken) {
    for (let slash = file.lastIndexOf("/"); slash > 0; slash = file.lastIndexOf("/", slash - 1)) {
      const above = taken.get(file.slice(0, slash));
      if (above !== undefined) fail(at.field, `${file} is below ${file.slice(0, slash)}, ${above.what}, which is a file`);
    }
  }
}

function refuseUnknownFields(o: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(o)) {
    if (allowed.includes(key)) continue;
    const [near] = allowed.filter((a) => editDistance(a, key) <= 2).sort((a, b) => editDistance(a, key) - editDistance(b, key));
    fail(`${where}${key}`, `unknown field${near === undefined ? "" : ` (did you mean "${near}"?)`}; allowed: ${allowed.join(", ")}`);
  }
}

/** Levenshtein distance, for "did you mean" on a refused field name. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length]!;
}

function parseSecret(json: unknown, where: string, fields: readonly string[], secretsDir: string, mountPoint: string): SecretSpec {
  const o = expectObject(json, where);
  refuseUnknownFields(o, fields, `${where}.`);
  const name = secretName(o.name, `${where}.name`);
  const file = absolutePath(o.file, `${where}.file`);
  const path = targetPath(o.path ?? `${secretsDir}/${name}`, `${where}.path`, secretsDir, mountPoint);
  const bits = mode(o.mode ?? "0400", `${where}.mode`);
  const owner = account(o.owner ?? "0", `${where}.owner`);
  const group = account(o.group ?? "0", `${where}.group`);
  const symlink = bool(o.symlink ?? true, `${where}.symlink`);
  const neededForUsers = bool(o.neededForUsers ?? false, `${where}.neededForUsers`);
  const restartUnits = unitNames(o.restartUnits ?? [], `${where}.restartUnits`);
  const reloadUnits = unitNames(o.reloadUnits ?? [], `${where}.reloadUnits`);
  const placeholder = o.placeholder === undefined ? undefined : placeholderText(o.placeholder, `${where}.placeholder`);
  const trim = bool(o.trim ?? false, `${where}.trim`);
  const credential = bool(o.credential ?? false, `${where}.credential`);
  return { name, file, path, mode: bits, owner, group, symlink, neededForUsers, restartUnits, reloadUnits, placeholder, trim, credential };
}

function parseTemplate(json: unknown, where: string, fields: readonly string[], secretsDir: string, mountPoint: string): TemplateSpec {
  const o = expectObject(json, where);
  refuseUnknownFields(o, fields, `${where}.`);
  const name = secretName(o.name, `${where}.name`);
  const file = absolutePath(o.file, `${where}.file`);
  const path = targetPath(o.path ?? renderedPath(secretsDir, name), `${where}.path`, secretsDir, mountPoint);
  const bits = mode(o.mode ?? "0400", `${where}.mode`);
  const owner = account(o.owner ?? "0", `${where}.owner`);
  const group = account(o.group ?? "0", `${where}.group`);
  const symlink = bool(o.symlink ?? true, `${where}.symlink`);
  const restartUnits = unitNames(o.restartUnits ?? [], `${where}.restartUnits`);
  const reloadUnits = unitNames(o.reloadUnits ?? [], `${where}.reloadUnits`);
  return { name, file, path, mode: bits, owner, group, symlink, restartUnits, reloadUnits };
}

/** A secret's or template's `path`: absolute, and neither secretsDir, nor above it, nor in or above the mount point. */
function targetPath(value: unknown, where: string, secretsDir: string, mountPoint: string): string {
  const path = absolutePath(value, where);
  if (path === secretsDir) fail(where, `must not be secretsDir itself`);
  if (isWithin(path, secretsDir)) fail(where, `must not contain secretsDir (${secretsDir})`);
  if (isWithin(path, mountPoint)) fail(where, `must not contain secretsMountPoint (${mountPoint})`);
  if (path === mountPoint || isWithin(mountPoint, path)) fail(where, `must not be inside secretsMountPoint (${mountPoint})`);
  return path;
}

function placeholderText(value: unknown, where: string): string {
  if (typeof value !== "string" || value === "") fail(where, `expected a non-empty string, got ${show(value)}`);
  if (/[\0\n]/.test(value)) fail(where, "must not contain NUL or newline");
  return value;
}

/** Secret names become paths under the generation directory, so they must stay inside it. */
export function secretName(value: unknown, where: string): string {
  if (typeof value !== "string" || value === "") fail(where, `expected a non-empty string, got ${show(value)}`);
  if (/[\0\n]/.test(value)) fail(where, `must not contain NUL or newline`);
  if (value.startsWith("/")) fail(where, `must be relative, got "${value}"`);
  for (const segment of value.split("/")) {
    if (segment === "") fail(where, `"${value}" has an empty path segment`);
    if (segment === "." || segment === "..") fail(where, `"${value}" must not contain "${segment}" segments`);
  }
  return value;
}

/** What posix.normalize would change in an absolute path without ".." segments, or a trailing slash. */
const NOT_NORMAL = /\/\/|\/\.(\/|$)|\/$/;

function absolutePath(value: unknown, where: string): string {
  if (typeof value !== "string" || value === "") fail(where, `expected an absolute path, got ${show(value)}`);
  if (/[\0\n]/.test(value)) fail(where, `must not contain NUL or newline`);
  if (!value.startsWith("/")) fail(where, `expected an absolute path, got "${value}"`);
  if (value.split("/").some((s) => s === "..")) fail(where, `must not contain ".." segments: "${value}"`);
  // Store paths and the module's paths are normal already; posix.normalize walks the string a
  // character at a time in cold code, three times per secret.
  if (!NOT_NORMAL.test(value)) return value;
  const normal = posix.normalize(value);
  return normal.length > 1 && normal.endsWith("/") ? normal.slice(0, -1) : normal;
}

function mode(value: unknown, where: string): number {
  const bits = typeof value === "string" ? parseMode(value) : undefined;
  if (bits === undefined) fail(where, `expected a chmod mode like "0400" or "u=r,g=r", got ${show(value)}`);
  return bits;
}

function account(value: unknown, where: string): string {
  if (typeof value === "number" && Number.isInteger(value) && value >= 0) return String(value);
  if (typeof value !== "string" || value === "" || /[\0\n:]/.test(value)) {
    fail(where, `expected a user/group name or numeric id, got ${show(value)}`);
  }
  return value;
}

function unitNames(value: unknown, where: string): string[] {
  if (!Array.isArray(value)) fail(where, `expected a list of unit names, got ${show(value)}`);
  return value.map((unit, i) => {
    if (typeof unit !== "string" || !isUnitName(unit)) fail(`${where}[${i}]`, `expected a unit name like "nginx.service", got ${show(unit)}`);
    return unit;
  });
}

function bool(value: unknown, where: string): boolean {
  if (typeof value !== "boolean") fail(where, `expected true or false, got ${show(value)}`);
  return value;
}

function expectObject(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(where, `expected an object, got ${show(value)}`);
  return value as Record<string, unknown>;
}

/** True if `path` is strictly below `dir`. */
export function isWithin(dir: string, path: string): boolean {
  return path.startsWith(dir === "/" ? "/" : `${dir}/`) && path !== dir;
}

function show(value: unknown): string {
  const s = JSON.stringify(value);
  return s === undefined ? String(value) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function fail(where: string, message: string): never {
  throw new ManifestError(`manifest: ${where}: ${message}`);
}
