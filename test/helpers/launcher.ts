// bin/agenixd over a copy of dist/ for the tests, and stand-ins for blobs node refuses.
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { renderLauncher, type LauncherValues } from "../../scripts/launch.js";

const DIST = fileURLToPath(new URL("../../../dist", import.meta.url));

/**
 * A copy of dist/ in `dir` (to damage freely: `change` is given its path) and bin/agenixd for it,
 * at `dir`/agenixd, run by /bin/sh with this node unless `values` say otherwise.
 */
export function installLauncher(dir: string, values: Partial<LauncherValues> = {}, change: (dist: string) => void = () => {}): string {
  const dist = join(dir, "dist");
  cpSync(DIST, dist, { recursive: true });
  change(dist);
  const launcher = join(dir, "agenixd");
  writeFileSync(launcher, renderLauncher({ shell: "/bin/sh", node: process.execPath, dist, ...values }), { mode: 0o755 });
  return launcher;
}

/**
 * Makes `blob` look built by another release of this Node major: node compares the version in the
 * blob's header (its first copy of process.versions.node) with its own and refuses the blob
 * (exit 14), as it refuses one that an older nodejs built before an upgrade.
 */
export function makeBlobOfAnotherNodeRelease(blob: string): void {
  const bytes = readFileSync(blob);
  const version = process.versions.node;
  const at = bytes.indexOf(version);
  if (at < 0 || at > 64) throw new Error(`${blob}: no Node version in its header`);
  // The last digit one up: another release, and a string of the same length.
  bytes.write(version.slice(0, -1) + String((Number(version.at(-1)) + 1) % 10), at);
  writeFileSync(blob, bytes);
}
