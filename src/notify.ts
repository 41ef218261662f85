// sd_notify(3): STATUS= while working, READY=1 once the new generation is live.
// A no-op without $NOTIFY_SOCKET, so the native addon is only loaded under systemd.
import { createRequire } from "node:module";

interface SdNotify {
  sendStatus(text: string): void;
  ready(): void;
}

export interface Notifier {
  status(text: string): void;
  ready(): void;
}

export function createNotifier(env: NodeJS.ProcessEnv = process.env): Notifier {
  if (!env.NOTIFY_SOCKET) return { status() {}, ready() {} };
  const sd = createRequire(import.meta.url)("sd-notify") as SdNotify;
  return {
    status: (text) => sd.sendStatus(text.replace(/\n/g, " ")),
    ready: () => sd.ready(),
  };
}
