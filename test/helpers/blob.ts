// Stand-ins for blobs node refuses, made from dist/agenixd.blob.
import { readFileSync, writeFileSync } from "node:fs";

/**
 * Makes `blob` look built by another release of this Node major: node compares the version in the
 * blob's header (its first copy of process.versions.node) with its own and refuses the blob
 * (exit 14), as it refuses one that an older nodejs built before an upgrade.
 */
export function makeBlobOfAnotherNodeRelease(blob: string): void {
  const bytes = readFileSync(blob);
  const version = Buffer.from(process.versions.node);
  const at = bytes.indexOf(version);
  if (at < 0 || at > 64) throw new Error(`${blob}: no Node version in its header`);
  const other = Buffer.from(process.versions.node.replace(/\d+$/, (patch) => String((Number(patch) + 1) % 10).padStart(patch.length, "0").slice(-patch.length)));
  other.copy(bytes, at);
  writeFileSync(blob, bytes);
}
