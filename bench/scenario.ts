// One activation's inputs, shared by both contestants: where the ramfs goes, where the
// symlink goes, and the secrets with agenix's defaults (mode 0400, owner 0, group 0, symlinked).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Fixture } from "./fixtures.js";
import type { SecretEntry } from "../src/manifest.js";

export type ScenarioSecret = SecretEntry;

export interface Scenario {
  /** Fresh directory per run; everything the run creates is under it. */
  root: string;
  secretsDir: string;
  secretsMountPoint: string;
  identityPaths: string[];
  secrets: ScenarioSecret[];
}

export function makeScenario(root: string, fixture: Fixture): Scenario {
  mkdirSync(root, { recursive: true });
  const secretsDir = join(root, "agenix");
  const secrets = fixture.secrets.map((s, i) => {
    const name = `secret-${String(i).padStart(5, "0")}`;
    return { name, file: s.file, path: join(secretsDir, name), mode: "0400", owner: "0", group: "0", symlink: true };
  });
  return { root, secretsDir, secretsMountPoint: join(root, "agenix.d"), identityPaths: [fixture.identityPath], secrets };
}

/** Writes the agenixd manifest (the JSON the NixOS module puts into the store) and returns its path. */
export function writeManifest(scenario: Scenario, path: string): string {
  const manifest = {
    version: 1,
    secretsDir: scenario.secretsDir,
    secretsMountPoint: scenario.secretsMountPoint,
    identityPaths: scenario.identityPaths,
    keepGenerations: 1,
    secrets: scenario.secrets,
  };
  writeFileSync(path, JSON.stringify(manifest));
  return path;
}
