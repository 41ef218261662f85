// The Host a user's own agenixd service runs with (the Home Manager module's `agenixd.service` in the
// user's manager). The pipeline is src/activate.ts's, unchanged; what differs is passed in here:
// - the only trusted owner is the user (root stays trusted, as everywhere: it owns /run/user);
// - no mount: a user cannot mount a ramfs, and `$XDG_RUNTIME_DIR` (/run/user/<uid>, made by
//   systemd-logind or the user manager) is already a tmpfs of the user's own, mode 0700, removed at
//   the last logout. The mount point must be on it (a tmpfs or a ramfs), else the activation fails;
// - no chown: every file is the user's, whatever the manifest says;
// - `systemctl --user` for restarts and reloads; the lock lives in the user's mount point.
import { statfsSync } from "node:fs";
import { isAbsolute } from "node:path";
import { openMountPoint, RAMFS_MAGIC } from "./ramfs.js";
import { Dirs } from "./secure-fs.js";
import { fsError } from "./errno.js";
import type { Host } from "./activate.js";

export const TMPFS_MAGIC = 0x01021994;

/** The user's host: `uid`/`gid` own everything; the mount point must already sit on a tmpfs or ramfs. */
export function userHost(uid = process.getuid!(), gid = process.getgid!()): Host {
  return {
    rootUid: uid,
    mountPointMode: 0o700,
    systemctlArgs: ["--user"],
    async ensureRamfs(mountPoint) {
      const dirs = new Dirs();
      try {
        const mp = openMountPoint(mountPoint, dirs, { uids: [uid], gids: [], who: `root or uid ${uid}` });
        let type: number;
        try {
          type = statfsSync(mp.op).type >>> 0;
        } catch (e) {
          throw fsError(e, mountPoint);
        }
        if (type !== TMPFS_MAGIC && type !== RAMFS_MAGIC) {
          throw new Error(
            `cannot use secretsMountPoint ${mountPoint}: it is on a 0x${type.toString(16)} filesystem, not a tmpfs or ramfs; ` +
              `a user's secrets live below $XDG_RUNTIME_DIR (/run/user/${uid}), which is one`,
          );
        }
      } finally {
        dirs.close();
      }
    },
    readAccounts() {
      return { uid: () => uid, gid: () => gid };
    },
  };
}

/** The prefixes a user's manifest may start a path with, standing for $XDG_RUNTIME_DIR (agenix's spelling and systemd's). */
const RUNTIME_DIR_PREFIXES = ["${XDG_RUNTIME_DIR}", "$XDG_RUNTIME_DIR", "%t"] as const;

/**
 * A user's manifest with every path that starts with `${XDG_RUNTIME_DIR}` (or `%t`) made absolute
 * from the environment the user manager gives its services. Only a leading prefix is expanded;
 * anything else is left for the manifest's own validation to judge.
 */
export function expandRuntimeDir(json: unknown, env: NodeJS.ProcessEnv = process.env): unknown {
  const needs = JSON.stringify(json).match(/"(\$\{XDG_RUNTIME_DIR\}|\$XDG_RUNTIME_DIR|%t)/);
  if (!needs) return json;
  const dir = env.XDG_RUNTIME_DIR;
  if (dir === undefined || !isAbsolute(dir) || dir.length > 4096) {
    throw new Error("the manifest's paths start with ${XDG_RUNTIME_DIR}, but XDG_RUNTIME_DIR is not set to an absolute path (run agenixd --user from the user's systemd manager)");
  }
  const expand = (v: unknown): unknown => {
    if (typeof v !== "string") return v;
    for (const p of RUNTIME_DIR_PREFIXES) if (v === p || v.startsWith(`${p}/`)) return dir.replace(/\/+$/, "") + v.slice(p.length);
    return v;
  };
  const o = json as Record<string, unknown>;
  if (typeof o !== "object" || o === null || Array.isArray(o)) return json;
  const items = (list: unknown) => (Array.isArray(list) ? list.map((s) => (typeof s === "object" && s !== null ? { ...s, path: expand((s as Record<string, unknown>).path) } : s)) : list);
  return {
    ...o,
    secretsDir: expand(o.secretsDir),
    secretsMountPoint: expand(o.secretsMountPoint),
    ...(Array.isArray(o.identityPaths) ? { identityPaths: o.identityPaths.map(expand) } : {}),
    ...(o.secrets !== undefined ? { secrets: items(o.secrets) } : {}),
    ...(o.templates !== undefined ? { templates: items(o.templates) } : {}),
  };
}

/** Where a user's secrets are by default, as agenix's Home Manager module has them. */
export function userDefaults(env: NodeJS.ProcessEnv = process.env): { secretsDir: string; secretsMountPoint: string } {
  const dir = env.XDG_RUNTIME_DIR ?? `/run/user/${process.getuid!()}`;
  return { secretsDir: `${dir}/agenix`, secretsMountPoint: `${dir}/agenix.d` };
}
