// Serialises activations that share a secretsMountPoint.
// The lock is an abstract unix socket name: the kernel releases it when the holder dies (even by
// SIGKILL), so there is no stale lock file to break and no race in breaking one. The name includes
// the mount namespace, since mounts (and so the generations) are per namespace.
import { createServer, type Server } from "node:net";
import { readlinkSync } from "node:fs";

export interface Lock {
  release(): Promise<void>;
}

export async function acquireLock(mountPoint: string, options: { timeoutMs?: number; onWait?: () => void } = {}): Promise<Lock> {
  const name = `\0agenixd:${readlinkSync("/proc/self/ns/mnt")}:${mountPoint}`;
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  let waited = false;
  for (;;) {
    const server = await tryListen(name);
    if (server) {
      server.unref();
      return { release: () => new Promise((resolve) => server.close(() => resolve())) };
    }
    if (Date.now() > deadline) throw new Error(`another activation still holds the lock for ${mountPoint}`);
    if (!waited) options.onWait?.();
    waited = true;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tryListen(name: string): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", (e: NodeJS.ErrnoException) => (e.code === "EADDRINUSE" ? resolve(undefined) : reject(e)));
    server.listen(name, () => resolve(server));
  });
}
