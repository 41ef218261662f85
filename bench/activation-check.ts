// After every timed run: did the contestant really produce every secret, byte for byte, with
// its mode, behind the secretsDir symlink? A fast run that wrote nothing must not count.
import { createHash } from "node:crypto";
import { lstatSync, readFileSync, readlinkSync, statSync } from "node:fs";
import type { FixtureSecret } from "./fixtures.js";
import type { Scenario } from "./scenario.js";

export function checkActivation(s: Scenario, expected: readonly FixtureSecret[], who: string): void {
  const fail = (why: string): never => { throw new Error(`${who}: wrong result: ${why}`); };
  const link = lstatSync(s.secretsDir, { throwIfNoEntry: false });
  if (!link) fail(`${s.secretsDir} does not exist`);
  if (!link!.isSymbolicLink()) fail(`${s.secretsDir} is not a symlink`);
  const target = readlinkSync(s.secretsDir);
  if (!target.startsWith(s.secretsMountPoint)) fail(`${s.secretsDir} points to ${target}, outside the mount point`);
  s.secrets.forEach((secret, i) => {
    const st = statSync(secret.path);
    if ((st.mode & 0o7777) !== parseInt(secret.mode, 8)) fail(`${secret.path} has mode ${(st.mode & 0o7777).toString(8)}`);
    if (st.uid !== Number(secret.owner) || st.gid !== Number(secret.group)) fail(`${secret.path} is owned by ${st.uid}:${st.gid}`);
    const content = readFileSync(secret.path);
    const digest = createHash("sha256").update(content).digest("hex");
    content.fill(0);
    if (digest !== expected[i]!.sha256) fail(`${secret.path} does not hold the expected plaintext`);
  });
}
