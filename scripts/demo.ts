// `npm run demo`: a throwaway host key, a few encrypted secrets, two real activations, and the
// resulting tree. Runs as root in a private mount namespace with its own /run and its own
// view of /etc/passwd and /etc/group, so the machine itself is left untouched.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateKeyPairSync } from "node:crypto";
import { fileURLToPath } from "node:url";

const AGENIXD = fileURLToPath(new URL("../../dist/agenixd.cjs", import.meta.url));
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

function requireTools(): void {
  if (process.getuid?.() !== 0) {
    console.error("The demo mounts a ramfs and sets file owners, so it needs root: run `sudo npm run demo`.");
    process.exit(1);
  }
  const missing = ["age", "ssh-keygen", "unshare"].filter((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0);
  if (missing.length > 0) {
    console.error(`The demo needs ${missing.join(", ")}: apt-get install age openssh-client util-linux`);
    process.exit(1);
  }
}

function enterPrivateNamespace(): never {
  const r = spawnSync("unshare", ["--mount", "--propagation", "private", process.execPath, fileURLToPath(import.meta.url)], {
    stdio: "inherit",
    env: { ...process.env, AGENIXD_DEMO_NAMESPACE: "1" },
  });
  process.exit(r.status ?? 1);
}

function encrypt(dir: string, name: string, plaintext: string, recipient: string): string {
  const file = join(dir, `${name}.age`);
  writeFileSync(file, execFileSync("age", ["--encrypt", "--armor", "-r", recipient], { input: plaintext }));
  return file;
}

function activate(manifest: string): number {
  return spawnSync(process.execPath, [AGENIXD, "activate", "--manifest", manifest], { stdio: "inherit", env: { ...process.env, NOTIFY_SOCKET: "" } }).status ?? 1;
}

function showTree(): void {
  console.log(`\n${bold("$ ls -l /run/agenix")}`);
  console.log(execFileSync("ls", ["-l", "/run/agenix"], { encoding: "utf8" }).trimEnd());
  console.log(bold("$ find /run/agenix/ /run/agenix.d /run/tabby -printf '%M %u %g %p %l'"));
  for (const line of execFileSync("find", ["/run/agenix/", "/run/agenix.d", "/run/tabby", "-printf", "%M\t%u\t%g\t%p\t%l\n"], { encoding: "utf8" }).trimEnd().split("\n")) {
    const [mode, user, group, path, link] = line.split("\t");
    console.log(`${mode} ${user!.padEnd(8)} ${group!.padEnd(8)} ${path}${link ? ` -> ${link}` : ""}`);
  }
}

requireTools();
if (!process.env.AGENIXD_DEMO_NAMESPACE) enterPrivateNamespace();

const work = mkdtempSync("/tmp/agenixd-demo-");
try {
  execFileSync("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"]);
  // Service users as a NixOS configuration would declare them, visible only inside this namespace.
  writeFileSync(join(work, "passwd"), `${readFileSync("/etc/passwd", "utf8").trimEnd()}\npostgres:x:71:71::/var/lib/postgresql:/usr/sbin/nologin\ntabby:x:932:932::/var/lib/tabby:/usr/sbin/nologin\n`);
  writeFileSync(join(work, "group"), `${readFileSync("/etc/group", "utf8").trimEnd()}\npostgres:x:71:\ntabby:x:932:\nkeys:x:96:\n`);
  execFileSync("mount", ["--bind", join(work, "passwd"), "/etc/passwd"]);
  execFileSync("mount", ["--bind", join(work, "group"), "/etc/group"]);

  mkdirSync(join(work, "ssh"));
  const hostKey = join(work, "ssh/ssh_host_ed25519_key");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "demo host", "-f", hostKey]);
  const recipient = readFileSync(`${hostKey}.pub`, "utf8").trim();
  console.log(`${bold("host key")} ${recipient}`);

  const store = join(work, "store");
  mkdirSync(store);
  const secrets = (dbPassword: string) => [
    { name: "tabby/config.toml", file: encrypt(store, "tabby-config", `[server]\nendpoint = "http://localhost:8080"\ntoken = "auth_5f0c1e6b2a9d4c7e"\n`, recipient),
      path: "/run/tabby/config.toml", mode: "0400", owner: "tabby", group: "tabby", symlink: true },
    { name: "postgres/password", file: encrypt(store, `db-password-${dbPassword}`, dbPassword, recipient),
      path: "/run/agenix/postgres/password", mode: "0400", owner: "postgres", group: "postgres", symlink: true },
    { name: "tls/example.org.key", file: encrypt(store, "tls-key", generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString(), recipient),
      path: "/run/agenix/tls/example.org.key", mode: "0440", owner: "0", group: "keys", symlink: true },
  ];
  const manifest = (dbPassword: string) => {
    const file = join(work, `manifest-${dbPassword}.json`);
    writeFileSync(file, JSON.stringify({ version: 1, secretsDir: "/run/agenix", secretsMountPoint: "/run/agenix.d",
      identityPaths: ["/etc/ssh/ssh_host_rsa_key", hostKey], keepGenerations: 1, secrets: secrets(dbPassword) }, null, 2));
    return file;
  };

  console.log(`\n${bold("# first activation (boot)")}`);
  const first = activate(manifest("correct-horse"));
  showTree();
  console.log(`\n${bold("# second activation (nixos-rebuild switch) with a new database password")}`);
  const second = activate(manifest("battery-staple"));
  showTree();
  console.log(`\n${bold("$ cat /run/agenix/postgres/password")}\n${readFileSync("/run/agenix/postgres/password", "utf8")}`);
  process.exitCode = first === 0 && second === 0 ? 0 : 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
