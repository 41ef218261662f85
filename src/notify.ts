// sd_notify(3): STATUS= while working and READY=1 once the new generation is live. A no-op
// without $NOTIFY_SOCKET. agenixd's own addon sends the datagrams (src/native.ts), not libsystemd.
//
// Under scripts/agenixd-launcher.sh the unit's main process is the launcher, which waits for node
// (to run the plain bundle if node refuses the snapshot); it passes its pid as $AGENIXD_MAIN_PID
// and every message is sent on its behalf, so that systemd, which takes notifications from the
// main process only (NotifyAccess=main), takes them, and reads READY=1 as the main process's
// even if node has exited by then.
import type { NativeAddon } from "./native.js";
import { printErr } from "./output.js";

export interface Notifier {
  status(text: string): void;
  ready(): void;
}

/** systemd ignores a notification datagram over 4096 bytes; a STATUS= that lists many failed secrets is cut short of it. */
const MAX_STATUS = 1024;

export function createNotifier(env: NodeJS.ProcessEnv, addon: Pick<NativeAddon, "notify">): Notifier {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return { status() {}, ready() {} };
  const pid = /^[1-9][0-9]*$/.test(env.AGENIXD_MAIN_PID ?? "") ? Number(env.AGENIXD_MAIN_PID) : process.pid;
  let failed = false;
  const send = (state: string) => {
    try {
      addon.notify(socket, pid, state);
    } catch (e) {
      // As sd_notify(3)'s callers do, agenixd goes on; once, the journal learns why systemd may wait.
      if (!failed) printErr(`agenixd: cannot notify ${socket}: ${(e as Error).message}\n`);
      failed = true;
    }
  };
  return {
    status: (text) => {
      const line = text.replace(/\n/g, " ");
      send(`STATUS=${line.length > MAX_STATUS ? `${line.slice(0, MAX_STATUS - 1)}…` : line}\n`);
    },
    ready: () => send("READY=1\n"),
  };
}
