// package-lock.json stays registry-agnostic: no `resolved` URL (scripts/npm-deps.mjs, and so the
// Nix build, refuses one), also after a maintainer's next plain `npm install`, which .npmrc's
// omit-lockfile-registry-resolved makes so. Both lockfiles: the project's and .ci/node's.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import assert from "node:assert/strict";

const root = fileURLToPath(new URL("../../", import.meta.url));

for (const dir of ["", ".ci/node"]) {
  const lockfile = join(dir, "package-lock.json");
  test(`${lockfile} names no registry, and npm install keeps it so`, (t) => {
    const committed = readFileSync(join(root, lockfile), "utf8");
    assert.doesNotMatch(committed, /"resolved"/);
    const npmrc = readFileSync(join(root, dir, ".npmrc"), "utf8");
    assert.match(npmrc, /^omit-lockfile-registry-resolved=true$/m);
    const settings = npmrc.split("\n").filter((l) => l.trim() && !/^\s*[#;]/.test(l));
    for (const line of settings) assert.doesNotMatch(line, /^\s*(@[^:]+:)?registry\s*=|\/\//, `.npmrc pins no registry: ${line}`);

    const scratch = mkdtempSync(join(tmpdir(), "agenixd-lockfile-"));
    t.after(() => rmSync(scratch, { recursive: true, force: true }));
    for (const f of ["package.json", ".npmrc"]) copyFileSync(join(root, dir, f), join(scratch, f));
    // Resolves the whole tree afresh and writes a new lockfile, as `npm install` does for an added
    // or updated package (no install: the tarballs are not needed), from the metadata npm ci left
    // in npm's cache or from the registry. Without the setting every package gets a `resolved`.
    const r = spawnSync("npm", ["install", "--package-lock-only", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"], { cwd: scratch, encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const rewritten = readFileSync(join(scratch, "package-lock.json"), "utf8");
    assert.doesNotMatch(rewritten, /"resolved"/);
    assert.match(rewritten, /"integrity": "sha512-/, "the tarballs stay pinned by their integrity");
  });
}
