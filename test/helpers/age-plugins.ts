// Installs test/helpers/age-plugin-test.ts as age-plugin-<name> binaries for the tests.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateAgeKey } from "./age-cli.js";
import { pluginIdentityFor } from "./age-plugin-test.js";

const pluginScript = fileURLToPath(new URL("./age-plugin-test.js", import.meta.url));

/**
 * Writes `dir/age-plugin-<name>`, a /bin/sh wrapper that runs the test plugin in `mode` with this
 * Node by absolute path (the plugin's PATH holds only plugin directories). Each start appends a line
 * (pid and environment) to `countFile`.
 */
export function installTestPlugin(dir: string, name: string, mode: string, countFile = "-"): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `age-plugin-${name}`);
  writeFileSync(path, `#!/bin/sh\nexec '${process.execPath}' '${pluginScript}' ${mode} '${countFile}' "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

/** An age X25519 key pair and the plugin identity file that wraps its scalar for plugin `name`. */
export function pluginKey(dir: string, name: string): { recipient: string; identityPath: string } {
  const key = generateAgeKey(dir, `${name}.age-key`);
  const secret = readFileSync(key.privatePath, "utf8").split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  const identityPath = join(dir, `${name}.identity`);
  writeFileSync(identityPath, `# test plugin identity\n${pluginIdentityFor(secret, name)}\n`, { mode: 0o600 });
  return { recipient: key.recipient, identityPath };
}
