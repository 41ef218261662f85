// flake.lock: every input of flake.nix is locked (so `nix flake check` on a clean clone writes no
// lock file), in the form Nix writes, and Nix itself finds nothing to change in it. Run with
// Debian's Nix 2.8 offline, on a copy of the tree, with a store of its own under a scratch
// directory (nothing is written to /nix). Nothing is fetched: the hashes themselves are checked
// by the first `nix flake check` that downloads the inputs (docs/nix-build.md says where they come from).
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { nixEval, nixSuite } from "./helpers/nix.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "agenixd-flake-lock-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface LockNode {
  inputs?: Record<string, string | string[]>;
  locked?: { type: string; owner: string; repo: string; rev: string; narHash: string; lastModified: number };
  original?: { type: string; owner: string; repo: string; ref?: string };
}
interface Lock { nodes: Record<string, LockNode>; root: string; version: number }

const lock = JSON.parse(readFileSync(join(root, "flake.lock"), "utf8")) as Lock;

/** flake.nix's inputs as Nix reads them: url, and follows of the input's own inputs. */
function flakeInputs(): Record<string, { url: string; follows: Record<string, string> }> {
  return nixEval(`builtins.mapAttrs (_: i: { url = i.url; follows = builtins.mapAttrs (_: x: x.follows) (i.inputs or { }); }) (import ${root}flake.nix).inputs`) as Record<string, { url: string; follows: Record<string, string> }>;
}

/** A flake copy of the tree: the files git would give a clean clone (tracked and new, not ignored). */
function copyTree(name: string): string {
  const dir = join(scratch, name);
  const files = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "utf8" });
  assert.equal(files.status, 0, files.stderr);
  for (const f of files.stdout.split("\0").filter(Boolean)) {
    try {
      cpSync(join(root, f), join(dir, f), { recursive: false });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e; // deleted in the work tree
    }
  }
  return dir;
}

/** `nix flake lock --no-update-lock-file --offline` on a copy: Nix's own verdict on the lock. */
function nixLock(dir: string) {
  return spawnSync("nix", ["--extra-experimental-features", "nix-command flakes", "--store", `local?root=${join(scratch, "store")}`, "flake", "lock", "--no-update-lock-file", "--offline", `path:${dir}`], {
    encoding: "utf8",
    env: { ...process.env, NIX_STATE_DIR: join(scratch, "state"), XDG_CACHE_HOME: join(scratch, "cache"), HOME: scratch },
    timeout: 120_000,
  });
}

describe("flake.lock", nixSuite(), () => {
  test("locks every input of flake.nix, as a github input pinned by rev, narHash and lastModified", () => {
    assert.equal(lock.version, 7);
    const inputs = flakeInputs();
    const rootNode = lock.nodes[lock.root]!;
    assert.deepEqual(Object.keys(rootNode.inputs ?? {}).sort(), Object.keys(inputs).sort());
    for (const [name, input] of Object.entries(inputs)) {
      const node = lock.nodes[rootNode.inputs![name] as string]!;
      const [, owner, repo, ref] = /^github:([^/]+)\/([^/]+)(?:\/(.+))?$/.exec(input.url) ?? [];
      assert.ok(owner, `${name}: ${input.url} is a github: URL`);
      assert.deepEqual(node.original, { owner, repo, ...(ref ? { ref } : {}), type: "github" }, `${name}: original is flake.nix's URL`);
      const locked = node.locked!;
      assert.equal(locked.type, "github");
      assert.equal(`${locked.owner}/${locked.repo}`, `${owner}/${repo}`);
      assert.match(locked.rev, /^[0-9a-f]{40}$/);
      assert.match(locked.narHash, /^sha256-[A-Za-z0-9+/]{43}=$/);
      assert.ok(Number.isInteger(locked.lastModified) && locked.lastModified > 1.7e9, `${name}: lastModified`);
      for (const [input2, follows] of Object.entries(input.follows)) {
        assert.deepEqual(node.inputs?.[input2], follows.split("/"), `${name}.inputs.${input2} follows ${follows}`);
      }
    }
  });

  test("Nix finds nothing to change in it, and would in a lock that no longer matches flake.nix", () => {
    const clean = copyTree("clean");
    const before = readFileSync(join(clean, "flake.lock"));
    const r = nixLock(clean);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readFileSync(join(clean, "flake.lock")), before, "flake.lock unchanged");

    // The control: the same check fails once flake.nix asks for something the lock does not hold.
    const changed = copyTree("changed");
    const flake = readFileSync(join(changed, "flake.nix"), "utf8");
    writeFileSync(join(changed, "flake.nix"), flake.replace('"github:NixOS/nixpkgs/nixos-unstable"', '"github:NixOS/nixpkgs/nixos-26.05"'));
    const stale = nixLock(changed);
    assert.notEqual(stale.status, 0, "a lock that does not match flake.nix is refused with --no-update-lock-file");
    // Offline it fails resolving the new input (the first step of a new lock); online, at writing it.
    assert.match(stale.stderr, /nixos-26\.05|requires lock file changes/);
  });
});
