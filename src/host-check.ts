// `agenixd check --host`: whether this host's identities open every secret of a manifest, from
// the headers alone. Each file key is unwrapped and checked against its header's MAC, then zeroed
// (unlockHeader): no plaintext is made, nothing is written, no unit is touched. Identities and
// `.age` files are read as an activation reads them (root's alone, src/secure-fs.ts), plugins run
// once each, sealed identities open through systemd-creds: what fails here fails at boot.
import { unlockHeader } from "./age/index.js";
import { openAll } from "./decrypt-all.js";
import { loadIdentities, type IdentityWarning } from "./identities.js";
import type { Manifest } from "./manifest.js";
import { Dirs, ROOT_READS } from "./secure-fs.js";

export interface SecretCheck {
  readonly name: string;
  readonly file: string;
  readonly ok: boolean;
  /** Why this host cannot open it. */
  readonly cause?: string;
}

export interface HostCheck {
  readonly ok: boolean;
  readonly secrets: readonly SecretCheck[];
  /** Identity files skipped or loaded with a warning, and what plugins said. */
  readonly warnings: readonly string[];
}

export async function checkHost(manifest: Manifest): Promise<HostCheck> {
  const warnings: string[] = [];
  const onIdentity = (w: IdentityWarning) => warnings.push(`identity ${w.path} ${w.skipped ? "skipped" : "used, but"}: ${w.reason}`);
  const dirs = new Dirs();
  try {
    const reads = { dirs, trust: ROOT_READS };
    const identities = await loadIdentities(manifest.identityPaths, onIdentity, reads, 0, manifest.pluginDirs);
    const opened = await openAll(manifest.secrets, identities, unlockHeader, undefined, reads, { onMessage: (plugin, message) => warnings.push(`age plugin ${plugin} says: ${message}`) });
    const secrets = opened.map((o) => (o.ok ? { name: o.secret.name, file: o.secret.file, ok: true } : { name: o.secret.name, file: o.secret.file, ok: false, cause: o.cause }));
    return { ok: secrets.every((s) => s.ok), secrets, warnings };
  } finally {
    dirs.close();
  }
}

export function renderHostCheck(manifestPath: string, check: HostCheck): string {
  const open = check.secrets.filter((s) => s.ok).length;
  const lines = [`${open} of ${check.secrets.length} secrets of ${manifestPath} open with this host's identities (headers only: nothing decrypted, nothing written)`];
  for (const w of check.warnings) lines.push(`warning: ${w}`);
  for (const s of check.secrets) lines.push(s.ok ? `ok    ${s.name}` : `FAIL  ${s.name} (${s.file}): ${s.cause}`);
  return `${lines.join("\n")}\n`;
}
