// sd_notify(3): STATUS= while working and READY=1 once the new generation is live.
// A no-op without $NOTIFY_SOCKET, so the native addon is only loaded under systemd.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** The sd-notify package's native addon: sd_notify(0, state) and sd_pid_notify(pid, 0, "READY=1"). */
interface NativeSdNotify {
  sendState(state: string): void;
  ready(pid?: number): void;
}

export interface Notifier {
  status(text: string): void;
  ready(): void;
}

/** addonBase: the file URL of a file in the installed package (dist/…); sd-notify is found from there. */
export function createNotifier(env: NodeJS.ProcessEnv, addonBase: string | URL): Notifier {
  if (!env.NOTIFY_SOCKET) return { status() {}, ready() {} };
  const sd = loadSdNotify(addonBase);
  return {
    status: (text) => sd.sendState(`STATUS=${text.replace(/\n/g, " ")}\n`),
    ready: () => sd.ready(process.pid),
  };
}

function loadSdNotify(addonBase: string | URL): NativeSdNotify {
  // The addon itself, not the package's entry point: that finds it through `bindings`, whose
  // search of the file system costs ~10 ms. First where the package layout puts it (dist/ beside
  // node_modules/), loaded with process.dlopen, which skips require()'s resolution (~2 ms).
  try {
    const addon = { exports: {} as NativeSdNotify };
    process.dlopen(addon, fileURLToPath(new URL("../node_modules/sd-notify/build/Release/notify.node", addonBase)));
    return addon.exports;
  } catch {
    const require = createRequire(addonBase);
    try {
      return require("sd-notify/build/Release/notify.node") as NativeSdNotify;
    } catch {
      return require("sd-notify") as NativeSdNotify;
    }
  }
}
