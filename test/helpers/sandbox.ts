// A throwaway machine layout under /tmp for activation tests: host keys, an encrypted "store",
// a manifest, and the secretsDir/secretsMountPoint pair. Tests run in a private mount namespace
// (npm test wraps the runner in `unshare --mount`), so the ramfs mounts never reach the host.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ageEncrypt, generateSshKey, type KeyPair } from "./age-cli.js";
import { launchEnv, snapshotArgs } from "../../scripts/launch.js";

/** The V8 startup snapshot `npm run build` makes. */
export const SNAPSHOT_BLOB = fileURLToPath(new URL("../../../dist/agenixd.blob", import.meta.url));

/** The two ways to start agenixd that `npm run build` makes (scripts/bundle.mjs). */
export const ENTRIES = {
  /** The V8 startup snapshot, as the NixOS package runs it. */
  snapshot: snapshotArgs(SNAPSHOT_BLOB),
  /** The plain bundle (package.json's bin, and the launcher's fallback). */
  bundle: [fileURLToPath(new URL("../../../dist/agenixd.cjs", import.meta.url))],
} as const;
export type Entry = keyof typeof ENTRIES;

/** node's arguments before agenixd's own: the snapshot, unless AGENIXD_TEST_ENTRY=bundle. */
export const AGENIXD: readonly string[] = ENTRIES[process.env.AGENIXD_TEST_ENTRY === "bundle" ? "bundle" : "snapshot"];

export interface SecretInput {
  name: string;
  plaintext?: string | Buffer;
  /** Use this .age file instead of encrypting `plaintext`. */
  file?: string;
  path?: string;
  mode?: string;
  owner?: string;
  group?: string;
  symlink?: boolean;
  neededForUsers?: boolean;
  recipients?: string[];
  /** Manifest version 2 fields; given on any secret, the manifest is written as version 2. */
  restartUnits?: string[];
  reloadUnits?: string[];
  /** Version 2 (issue 15). A version 2 manifest gives every secret the module's placeholder unless this is null. */
  placeholder?: string | null;
  trim?: boolean;
  credential?: boolean;
}

/** A template as the module writes it: its text goes into the fake store. */
export interface TemplateInput {
  name: string;
  /** The template text (placeholders, never plaintext); or `file`. */
  content?: string | Buffer;
  file?: string;
  path?: string;
  mode?: string;
  owner?: string;
  group?: string;
  symlink?: boolean;
  restartUnits?: string[];
  reloadUnits?: string[];
}

/** The placeholder the NixOS module gives secret `name` (config.age.placeholder.<name>). */
export function placeholder(name: string): string {
  return `<agenixd:${createHash("sha256").update(name).digest("hex")}:placeholder>`;
}

export interface RunResult {
  status: number | null;
  stderr: string;
  logs: Array<Record<string, unknown>>;
}

export class Sandbox {
  readonly root: string;
  readonly secretsDir: string;
  readonly mountPoint: string;
  readonly store: string;
  readonly hostKey: KeyPair;
  private counter = 0;

  constructor(readonly label = "t", sharedKey?: KeyPair) {
    this.root = mkdtempSync(`/tmp/agenixd-${label}-`);
    this.secretsDir = join(this.root, "run/agenix");
    this.mountPoint = join(this.root, "run/agenix.d");
    this.store = join(this.root, "store");
    mkdirSync(this.store);
    mkdirSync(join(this.root, "etc/ssh"), { recursive: true });
    this.hostKey = sharedKey ?? generateSshKey(join(this.root, "etc/ssh"), "ed25519");
  }

  /** Encrypts to the host key (or `recipients`) into the fake store; returns the .age path. */
  encrypt(plaintext: string | Buffer, recipients: string[] = [this.hostKey.recipient]): string {
    const file = join(this.store, `${++this.counter}-secret.age`);
    writeFileSync(file, ageEncrypt(plaintext, recipients));
    return file;
  }

  /** Writes a template text into the fake store, as the module's pkgs.writeText does; returns its path. */
  storeText(content: string | Buffer): string {
    const file = join(this.store, `${++this.counter}-template`);
    writeFileSync(file, content);
    return file;
  }

  /** `extra`: top-level fields (credstore among them). Templates, a credstore or any version 2 field make it version 2. */
  manifest(secrets: SecretInput[], extra: Record<string, unknown> = {}, templates: TemplateInput[] = []): string {
    const v2Fields = ["restartUnits", "reloadUnits", "placeholder", "trim", "credential"] as const;
    const v2 = templates.length > 0 || "credstore" in extra || secrets.some((s) => v2Fields.some((f) => s[f] !== undefined));
    const json = {
      version: v2 ? 2 : 1,
      secretsDir: this.secretsDir,
      secretsMountPoint: this.mountPoint,
      identityPaths: [this.hostKey.privatePath],
      keepGenerations: 1,
      ...extra,
      secrets: secrets.map((s) => ({
        name: s.name,
        file: s.file ?? this.encrypt(s.plaintext ?? `value of ${s.name}`, s.recipients),
        path: s.path ?? `${this.secretsDir}/${s.name}`,
        mode: s.mode ?? "0400",
        owner: s.owner ?? "0",
        group: s.group ?? "0",
        symlink: s.symlink ?? true,
        ...(s.neededForUsers === undefined ? {} : { neededForUsers: s.neededForUsers }),
        ...(v2 ? { restartUnits: s.restartUnits ?? [], reloadUnits: s.reloadUnits ?? [] } : {}),
        ...(v2 && s.placeholder !== null ? { placeholder: s.placeholder ?? placeholder(s.name) } : {}),
        ...(s.trim === undefined ? {} : { trim: s.trim }),
        ...(s.credential === undefined ? {} : { credential: s.credential }),
      })),
      ...(v2 ? {
        templates: templates.map((t) => ({
          name: t.name,
          file: t.file ?? this.storeText(t.content ?? ""),
          path: t.path ?? `${this.secretsDir}/rendered/${t.name}`,
          mode: t.mode ?? "0400",
          owner: t.owner ?? "0",
          group: t.group ?? "0",
          symlink: t.symlink ?? true,
          restartUnits: t.restartUnits ?? [],
          reloadUnits: t.reloadUnits ?? [],
        })),
      } : {}),
    };
    const file = join(this.root, `manifest-${++this.counter}.json`);
    writeFileSync(file, JSON.stringify(json, null, 2));
    return file;
  }

  run(manifestFile: string, args: string[] = [], entry: readonly string[] = AGENIXD): RunResult {
    const r = spawnSync(process.execPath, [...entry, "activate", "--manifest", manifestFile, ...args], {
      encoding: "utf8",
      env: launchEnv({ ...process.env, NOTIFY_SOCKET: "" }),
    });
    return { status: r.status, stderr: r.stderr, logs: parseLogs(r.stderr) };
  }

  /** Starts an activation without waiting (for kill and concurrency tests). */
  start(manifestFile: string) {
    return spawn(process.execPath, [...AGENIXD, "activate", "--manifest", manifestFile], {
      stdio: ["ignore", "ignore", "pipe"],
      env: launchEnv({ ...process.env, NOTIFY_SOCKET: "" }),
    });
  }

  read(relative: string): string {
    return readFileSync(join(this.secretsDir, relative), "utf8");
  }

  cleanup(): void {
    // Unmount everything below the sandbox (ramfs on the mount point, possibly stacked), then delete.
    for (let i = 0; i < 5; i++) {
      if (spawnSync("umount", ["-l", this.mountPoint], { stdio: "ignore" }).status !== 0) break;
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}

export function parseLogs(stderr: string): Array<Record<string, unknown>> {
  return stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Creates a real system user (and its group) for the duration of a test. */
export function withUser(name: string): { uid: number; gid: number; remove(): void } {
  spawnSync("userdel", [name], { stdio: "ignore" });
  spawnSync("groupdel", [name], { stdio: "ignore" });
  execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name]);
  const uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", name], { encoding: "utf8" }).trim());
  return {
    uid,
    gid,
    remove() {
      spawnSync("userdel", [name], { stdio: "ignore" });
      spawnSync("groupdel", [name], { stdio: "ignore" });
    },
  };
}

/** The filesystem type (statfs f_type) of a path, via stat(1), as a hex string. */
export function fsType(path: string): string {
  return execFileSync("stat", ["-f", "-c", "%t", path], { encoding: "utf8" }).trim();
}

/** Every entry below `roots`: path, type, mode, owner, size, mtime, inode, link target and content, hashed. A dry run must leave it equal. */
export function treeHash(...roots: string[]): string {
  const h = createHash("sha256");
  const walk = (p: string): void => {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      h.update(`${p} absent\n`);
      return;
    }
    h.update(`${p} ${st.mode} ${st.uid} ${st.gid} ${st.size} ${st.mtimeMs} ${st.ino}\n`);
    if (st.isSymbolicLink()) h.update(readlinkSync(p));
    else if (st.isFile()) h.update(readFileSync(p));
    else if (st.isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
  };
  for (const r of roots) walk(r);
  return h.digest("hex");
}

/**
 * A systemctl that records its arguments, made the one agenixd runs ($AGENIXD_SYSTEMCTL, passed on
 * to the activations this process starts). Returns a function that takes the calls made since.
 */
export function fakeSystemctl(): () => string[] {
  const dir = mkdtempSync("/tmp/agenixd-systemctl-");
  const calls = join(dir, "calls");
  const systemctl = join(dir, "systemctl");
  writeFileSync(systemctl, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${calls}\n`, { mode: 0o755 });
  process.env.AGENIXD_SYSTEMCTL = systemctl;
  return () => {
    let text = "";
    try {
      text = readFileSync(calls, "utf8");
    } catch {
      return [];
    }
    writeFileSync(calls, "");
    return text.split("\n").filter(Boolean);
  };
}
