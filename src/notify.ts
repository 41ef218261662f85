// sd_notify(3): STATUS= while working and READY=1 once the new generation is live.
// A no-op without $NOTIFY_SOCKET, so the native addon is only loaded under systemd.
import { createRequire } from "node:module";

/** The sd-notify package's native addon: sd_notify(0, state) and sd_pid_notify(pid, 0, "READY=1"). */
interface NativeSdNotify {
  sendState(state: string): void;
  ready(pid?: number): void;
}

export interface Notifier {
  status(text: string): void;
  ready(): void;
}

export function createNotifier(env: NodeJS.ProcessEnv = process.env): Notifier {
  if (!env.NOTIFY_SOCKET) return { status() {}, ready() {} };
  const sd = loadSdNotify();
  return {
    status: (text) => sd.sendState(`STATUS=${text.replace(/\n/g, " ")}\n`),
    ready: () => sd.ready(process.pid),
  };
}

function loadSdNotify(): NativeSdNotify {
  const require = createRequire(import.meta.url);
  try {
    // The addon itself: the package's entry point finds it through `bindings`, whose search of
    // the file system costs ~10 ms of a start that is otherwise ~100 ms.
    return require("sd-notify/build/Release/notify.node") as NativeSdNotify;
  } catch {
    return require("sd-notify") as NativeSdNotify;
  }
}
