// Templates (issue 15): config files whose text (a store file) holds placeholders, one per secret,
// rendered at activation with the decrypted values, in memory, then written into the generation at
// `rendered/<name>` like a secret. Rendering is one left-to-right pass over the template's bytes:
// a substituted value is never scanned again, so a secret that contains placeholder text (its own
// or another's) stays literal; bytes are bytes (NUL, invalid UTF-8, CRLF all pass through).
import type { Accounts } from "./accounts.js";
import { describeError } from "./errno.js";
import type { SecretSpec, TemplateSpec } from "./manifest.js";
import { ReadRefused, TrustError, withReadSource, type Ownership, type ReadSource } from "./secure-fs.js";

/** The directory of each generation that holds the rendered templates. */
export const RENDERED_ENTRY = "rendered";

export interface Substitution {
  /** The secret's name, for a failure's cause. */
  readonly secret: string;
  readonly placeholder: Uint8Array;
  /** The bytes put in the placeholder's place; undefined when the secret failed in this activation. */
  readonly value: Uint8Array | undefined;
}

export type Rendering =
  | { readonly ok: true; readonly data: Buffer }
  /** Secrets the template uses that have no value, in the order they first occur. */
  | { readonly ok: false; readonly unavailable: readonly string[] }
  /** The rendered file would be larger than the limit: nothing was allocated. */
  | { readonly ok: false; readonly unavailable?: undefined; readonly tooLarge: number };

/**
 * Bounds of a template (docs/limits.md): its text as read, and the file rendered from it. A
 * template repeating a 2 MiB secret 2,100 times would need 4.4 GB; the rendered size is summed
 * before anything is allocated, and one over the limit fails alone.
 */
export interface TemplateLimits {
  readonly maxTemplateBytes: number;
  readonly maxRenderedBytes: number;
}

export const TEMPLATE_LIMITS: TemplateLimits = { maxTemplateBytes: 16 * 1024 * 1024, maxRenderedBytes: 64 * 1024 * 1024 };

/** Bytes in words for a limit: "16 MiB", "1 KiB", "100 bytes". */
function sizeWords(n: number): string {
  if (n >= 1024 * 1024 && n % (1024 * 1024) === 0) return `${n / (1024 * 1024)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** `value` without one trailing "\n" or "\r\n" (a view: nothing is copied). */
export function trimOneNewline(value: Buffer): Buffer {
  const n = value.length;
  if (n === 0 || value[n - 1] !== 0x0a) return value;
  return value.subarray(0, n >= 2 && value[n - 2] === 0x0d ? n - 2 : n - 1);
}

/** Where a placeholder occurs next in the template, from the current position. */
interface Cursor {
  readonly sub: Substitution;
  at: number;
}

/**
 * Replaces every occurrence of every placeholder in `text` with its value, in one pass. Where two
 * placeholders would match at the same place the longer wins, and the scan goes on after it;
 * values are copied into the output, never searched. The output is a fresh buffer the caller zeroes.
 */
export function renderTemplate(text: Buffer, subs: readonly Substitution[], maxBytes: number = TEMPLATE_LIMITS.maxRenderedBytes): Rendering {
  // Only the placeholders that occur at all take part: a template names few of a thousand secrets.
  const cursors: Cursor[] = [];
  for (const sub of subs) {
    if (sub.placeholder.length === 0) continue;
    const at = text.indexOf(sub.placeholder);
    if (at >= 0) cursors.push({ sub, at });
  }
  const matches: { at: number; sub: Substitution }[] = [];
  let pos = 0;
  while (cursors.length > 0) {
    let next = cursors[0]!;
    for (const c of cursors) {
      if (c.at < next.at || (c.at === next.at && c.sub.placeholder.length > next.sub.placeholder.length)) next = c;
    }
    matches.push({ at: next.at, sub: next.sub });
    pos = next.at + next.sub.placeholder.length;
    // Occurrences that began inside the one just taken are not occurrences; look again from after it.
    for (let i = cursors.length - 1; i >= 0; i--) {
      const c = cursors[i]!;
      if (c.at >= pos) continue;
      c.at = text.indexOf(c.sub.placeholder, pos);
      if (c.at < 0) cursors.splice(i, 1);
    }
  }
  const unavailable = [...new Set(matches.filter((m) => m.sub.value === undefined).map((m) => m.sub.secret))];
  if (unavailable.length > 0) return { ok: false, unavailable };

  let size = text.length;
  for (const m of matches) size += m.sub.value!.length - m.sub.placeholder.length;
  if (size > maxBytes) return { ok: false, tooLarge: maxBytes };
  const out = Buffer.alloc(size);
  let from = 0;
  let to = 0;
  for (const m of matches) {
    to += text.copy(out, to, from, m.at);
    out.set(m.sub.value!, to);
    to += m.sub.value!.length;
    from = m.at + m.sub.placeholder.length;
  }
  text.copy(out, to, from);
  return { ok: true, data: out };
}

/**
 * The substitutions for every secret that has a placeholder: its value as `valueOf` gives it
 * (undefined when it failed), trimmed when the secret asks for it.
 */
export function substitutionsFor(secrets: readonly SecretSpec[], valueOf: (secret: SecretSpec) => Buffer | undefined): Substitution[] {
  const subs: Substitution[] = [];
  for (const secret of secrets) {
    if (secret.placeholder === undefined) continue;
    const value = valueOf(secret);
    subs.push({ secret: secret.name, placeholder: Buffer.from(secret.placeholder, "utf8"), value: value && secret.trim ? trimOneNewline(value) : value });
  }
  return subs;
}

export type RenderedTemplate =
  | { readonly ok: true; readonly template: TemplateSpec; readonly data: Buffer; readonly own: Ownership }
  | {
      readonly ok: false;
      readonly template: TemplateSpec;
      readonly cause: string;
      /** The secrets it lacked, when that is why. */
      readonly lacks?: readonly string[];
      /** Deferred with those secrets (src/activate.ts). */
      readonly waitsFor?: string;
    };

/** How template files are read: through held directories (src/secure-fs.ts), trusting root alone. */
export type TemplateSource = ReadSource;

/**
 * Renders each template in memory; a template that cannot be rendered says why, naming the secrets
 * it lacks, the limit it passes, or the file it will not read. Each template's failure is its own,
 * whatever it is: the others are rendered, and it keeps its previous rendering (src/activate.ts).
 * A template's file is read as root reads an `.age` file: a regular file of at most
 * `maxTemplateBytes`, root's, below directories only root can change (a user who could write it
 * could add any secret's public placeholder, or swap it for a symlink to /etc/shadow).
 */
export function renderTemplates(
  templates: readonly TemplateSpec[], subs: readonly Substitution[], accounts: Accounts, source?: TemplateSource, limits: TemplateLimits = TEMPLATE_LIMITS,
): RenderedTemplate[] {
  return withReadSource(source, (from) =>
    templates.map((template) => {
      try {
        return renderOne(template, subs, accounts, from, limits);
      } catch (e) {
        return { ok: false, template, cause: `cannot render the template: ${describeError(e)}` };
      }
    }),
  );
}

function renderOne(template: TemplateSpec, subs: readonly Substitution[], accounts: Accounts, source: TemplateSource, limits: TemplateLimits): RenderedTemplate {
  const uid = accounts.uid(template.owner);
  const gid = accounts.gid(template.group);
  if (uid === undefined) return { ok: false, template, cause: `unknown owner "${template.owner}" (not in /etc/passwd)` };
  if (gid === undefined) return { ok: false, template, cause: `unknown group "${template.group}" (not in /etc/group)` };
  let text: Buffer;
  try {
    text = source.dirs.readFile(template.file, source.trust, { maxBytes: limits.maxTemplateBytes, maxWords: sizeWords(limits.maxTemplateBytes) });
  } catch (e) {
    if (e instanceof ReadRefused && e.kind !== "untrusted") return { ok: false, template, cause: `template file ${e.what}` };
    if (e instanceof ReadRefused || e instanceof TrustError) return { ok: false, template, cause: `refusing to read the template: ${e.message}` };
    return { ok: false, template, cause: `cannot read the template: ${describeError(e, template.file)}` };
  }
  const rendering = renderTemplate(text, subs, limits.maxRenderedBytes);
  if (!rendering.ok) {
    if (rendering.unavailable !== undefined) return { ok: false, template, cause: unavailableCause(rendering.unavailable), lacks: rendering.unavailable };
    const words = sizeWords(rendering.tooLarge);
    return { ok: false, template, cause: `the rendered file would be larger than ${words} (limit ${words})` };
  }
  return { ok: true, template, data: rendering.data, own: { uid, gid, mode: template.mode } };
}

function unavailableCause(secrets: readonly string[]): string {
  const names = secrets.map((s) => `"${s}"`).join(", ");
  return secrets.length === 1 ? `uses secret ${names}, which failed in this activation` : `uses secrets ${names}, which failed in this activation`;
}
