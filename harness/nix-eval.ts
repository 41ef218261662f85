// Evaluates one of the harness's .nix files (./system.nix, ./home.nix) with its `json` argument,
// as `nix-instantiate --store dummy:// --eval --strict --json`, in a Nix state directory of its own.
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { cacheDir, repoRoot } from "./cache.js";
import { runChecked } from "./process.js";

export async function evalHarnessNix<T>(file: string, json: unknown): Promise<T> {
  const stateDir = mkdtempSync(join(cacheDir(), "nix-state-"));
  try {
    const out = await runChecked(
      ["nix-instantiate", "--store", "dummy://", "--eval", "--strict", "--json", "--argstr", "json", JSON.stringify(json), join(repoRoot, "harness", file)],
      { env: { ...process.env, NIX_STATE_DIR: stateDir, XDG_CACHE_HOME: stateDir } },
    );
    return JSON.parse(out) as T;
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}
