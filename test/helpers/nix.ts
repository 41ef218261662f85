// Running Debian's nix-instantiate from the Nix tests: against the dummy store (nothing is written
// to /nix), with its state in a scratch directory, and one clear failure when it is not installed.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";

/** Why the Nix tests cannot run here, or undefined when nix-instantiate is on PATH. */
export const nixMissing: string | undefined = (() => {
  const r = spawnSync("nix-instantiate", ["--version"], { stdio: "ignore" });
  if (!r.error) return undefined;
  return `nix-instantiate is not installed (${(r.error as NodeJS.ErrnoException).code}): the Nix tests evaluate nix/*.nix with it. Install Debian's nix-bin, listed in .ci/apt-packages with everything else the tests need: apt-get install nix-bin`;
})();

let suiteOptions: { skip?: string } | undefined;

/**
 * Options for each `describe` of a file that needs nix-instantiate. Without it, the file gets one
 * failing test saying how to install it, and its suites are skipped with the same reason
 * (instead of one ENOENT per test).
 */
export function nixSuite(): { skip?: string } {
  if (suiteOptions) return suiteOptions;
  if (nixMissing === undefined) return (suiteOptions = {});
  const reason = nixMissing;
  test("nix-instantiate is installed", () => {
    throw new Error(reason);
  });
  return (suiteOptions = { skip: reason });
}

/** nix-instantiate's own error output. */
export class NixError extends Error {}

const scratch = mkdtempSync(join(tmpdir(), "agenixd-nix-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const nixEnv = { ...process.env, NIX_STATE_DIR: join(scratch, "state"), XDG_CACHE_HOME: join(scratch, "cache") };

/** Runs `nix-instantiate --store dummy:// ARGS` and returns its standard output; a failure throws NixError with its message. */
export function nixInstantiate(args: readonly string[]): string {
  const r = spawnSync("nix-instantiate", ["--store", "dummy://", ...args], { encoding: "utf8", env: nixEnv });
  if (r.error) throw new Error(nixMissing ?? r.error.message);
  if (r.status !== 0) throw new NixError(r.stderr);
  return r.stdout;
}

let args = 0;

/** The value of `expr`, a Nix expression in which `arg` is the JSON value `arg` (null by default). */
export function nixEval(expr: string, arg: unknown = null): unknown {
  // Through a file: a large argument would pass the kernel's 128 KiB limit on one argv string.
  const argFile = join(scratch, `arg-${args++}.json`);
  writeFileSync(argFile, JSON.stringify(arg));
  const stdout = nixInstantiate(["--eval", "--strict", "--json", "-E", `let arg = builtins.fromJSON (builtins.readFile ${argFile}); in ${expr}`]);
  return JSON.parse(stdout);
}
