// The bench mounts ramfs for every run; it does so only inside a private mount namespace,
// so nothing reaches the machine's mount table and a crash leaves no mount behind.
import { spawnSync } from "node:child_process";

const MARKER = "AGENIXD_BENCH_PRIVATE_MOUNT_NS";

/** Re-runs this process under `unshare --mount --propagation private` unless it already is. */
export function ensurePrivateMountNamespace(): void {
  if (process.env[MARKER] === "1") return;
  if (process.getuid?.() !== 0) {
    throw new Error("the bench mounts ramfs in a private mount namespace: run it as root");
  }
  const r = spawnSync("unshare", ["--mount", "--propagation", "private", "--", process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, [MARKER]: "1" },
  });
  if (r.error) throw r.error;
  process.exit(r.status ?? 1);
}
