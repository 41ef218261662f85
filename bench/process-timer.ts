// Times one process from exec to exit, and to READY=1 on $NOTIFY_SOCKET, with peak RSS.
//
// Node cannot receive unix datagrams, so a tiny python3 helper does the measuring: it binds the
// notify socket, takes CLOCK_MONOTONIC, posix_spawn()s the command, and waits on the socket and a
// pidfd of the child. wait4() gives ru_maxrss, the same figure `/usr/bin/time -v` prints, and for
// the bash baseline it covers the largest `age` child too. The helper's own start-up is outside
// the measured interval, so the figures are not inflated by the harness.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

const HELPER = String.raw`
import json, os, select, socket, sys, time
spec = json.loads(sys.argv[1])
sock = None
if spec.get("notifySocket"):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(spec["notifySocket"])
log = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
           (os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2)]
messages = []
ready = None
t0 = time.monotonic_ns()
pid = os.posix_spawnp(spec["argv"][0], spec["argv"], spec["env"], file_actions=actions)
pidfd = os.pidfd_open(pid)
def drain():
    global ready
    while True:
        try:
            data = sock.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        now = time.monotonic_ns() - t0
        text = data.decode("utf-8", "replace")
        messages.append(text)
        if ready is None and "READY=1" in text.split("\n"):
            ready = now
watched = [pidfd] + ([sock] if sock else [])
while True:
    readable, _, _ = select.select(watched, [], [])
    if sock in readable:
        drain()
    if pidfd in readable:
        break
_, status, usage = os.wait4(pid, 0)
wall = time.monotonic_ns() - t0
if sock:
    drain()
print(json.dumps({"wallNs": wall, "readyNs": ready, "exitCode": os.waitstatus_to_exitcode(status),
                  "maxRssKiB": usage.ru_maxrss, "userNs": int(usage.ru_utime * 1e9),
                  "sysNs": int(usage.ru_stime * 1e9), "notifications": messages}))
`;

export interface ProcessTiming {
  wallMs: number;
  /** Exec to the READY=1 datagram, when a notify socket was given and READY=1 arrived. */
  readyMs: number | null;
  /** Exit code, or minus the signal number. */
  exitCode: number;
  maxRssKiB: number;
  cpuMs: number;
  notifications: string[];
}

export interface TimedCommand {
  argv: string[];
  env: Record<string, string>;
  /** stdout and stderr of the command go here (the bench never prints them unless it fails). */
  log: string;
  /** Path to bind a datagram socket at; passed to the command as NOTIFY_SOCKET. */
  notifySocket?: string;
}

function findPython(): string {
  // Prefer Debian's interpreter: a pyenv or venv shim would only add noise before t0.
  return existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
}
const python = findPython();

export function timeProcess(cmd: TimedCommand): ProcessTiming {
  const env = { ...cmd.env };
  if (cmd.notifySocket) env.NOTIFY_SOCKET = cmd.notifySocket;
  const spec = JSON.stringify({ argv: cmd.argv, env, log: cmd.log, notifySocket: cmd.notifySocket });
  const out = execFileSync(python, ["-I", "-c", HELPER, spec], { encoding: "utf8" });
  const r = JSON.parse(out) as {
    wallNs: number; readyNs: number | null; exitCode: number; maxRssKiB: number;
    userNs: number; sysNs: number; notifications: string[];
  };
  return {
    wallMs: r.wallNs / 1e6,
    readyMs: r.readyNs === null ? null : r.readyNs / 1e6,
    exitCode: r.exitCode,
    maxRssKiB: r.maxRssKiB,
    cpuMs: (r.userNs + r.sysNs) / 1e6,
    notifications: r.notifications,
  };
}
