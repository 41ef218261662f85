// How an agenixd process ends once main() has resolved. By then every file is written, the lock
// is released and systemd has been told, all synchronously: pino writes fd 2 with writeSync, and
// everything else agenixd prints goes through src/output.ts, which writes it whole. process.exit()
// would then still tear node down: join V8's platform threads, dispose of the isolate and its heap,
// run OpenSSL's and C++'s exit handlers. _exit(2) through the addon skips that, 1.5-3 ms of an
// N = 20 start (docs/performance.md). The 'exit' listeners still run first, as process.exit() runs them.
import { loadedNativeAddon } from "./native.js";

export function exitProcess(status: number): never {
  const addon = loadedNativeAddon();
  // Without the addon (--help, a usage error, a failed load) and when node itself writes something
  // at its end (--cpu-prof, --heap-prof, coverage), node's own exit.
  if (addon === undefined || writesAtExit()) process.exit(status);
  process.exitCode = status;
  process.emit("exit", status);
  return addon.exitNow(status);
}

function writesAtExit(): boolean {
  return process.env.NODE_V8_COVERAGE !== undefined || process.execArgv.some((a) => /^--(cpu-prof|heap-prof|prof)\b/.test(a));
}
