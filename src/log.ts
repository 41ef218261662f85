// Logging: pino JSON lines on stderr (the journal keeps them); a short readable form on a terminal.
// Nothing logged here may carry secret bytes: callers pass names, paths, numbers and causes only.
import { isoTime } from "./iso-time.js";
import { pino, type Logger, type DestinationStream } from "pino";
import { loadedNativeAddon } from "./native.js";
import { printErr } from "./output.js";

export type { Logger };

let prepared: Logger | undefined;

/**
 * Builds ahead of time the logger a start under systemd gets: JSON lines on fd 2. The snapshot
 * does so at build time, which spares each start ~1 ms of pino's set-up in cold code;
 * createLogger() hands it out once, set to the start's level.
 */
export function prepareJsonLogger(): void {
  prepared = jsonLogger(2, "info");
}

/** fd: where JSON lines go (stderr by default; the snapshot's warm-up logs to /dev/null). */
export function createLogger(options: { level?: string; pretty?: boolean; fd?: number } = {}): Logger {
  const level = options.level ?? process.env.AGENIXD_LOG_LEVEL ?? "info";
  const pretty = options.pretty ?? stderrIsATerminal();
  if (pretty) return pino(pinoOptions(level), readableStderr());
  if (options.fd === undefined && prepared) {
    const logger = prepared;
    prepared = undefined;
    logger.level = level;
    return logger;
  }
  return jsonLogger(options.fd ?? 2, level);
}

/**
 * isatty(2), not process.stderr.isTTY: that getter builds the whole stderr stream (~0.3 ms at a
 * start). Through the addon when it is loaded, as agenixd's commands load it first: node:tty loads
 * node:net with it (~2 ms at a start of the plain bundle).
 */
function stderrIsATerminal(): boolean {
  const addon = loadedNativeAddon();
  return addon ? addon.isatty(2) : process.getBuiltinModule("node:tty").isatty(2);
}

function jsonLogger(fd: number, level: string): Logger {
  // `dest`, not `fd`: pino.destination() reads process.stdout.fd when `dest` is missing, and that
  // getter builds node's stdout stream (a net.Socket on the journal's socket).
  return pino(pinoOptions(level), pino.destination({ dest: fd, sync: true }));
}

function pinoOptions(level: string) {
  return { name: "agenixd", level, base: undefined, formatters: { level: (label: string) => ({ level: label }) } };
}

const LEVEL_COLOURS: Record<string, string> = { error: "31", fatal: "31", warn: "33", info: "32", debug: "90", trace: "90" };

function readableStderr(): DestinationStream {
  return {
    write(line: string) {
      const { level, time, msg, name: _name, ...fields } = JSON.parse(line) as Record<string, unknown>;
      const when = isoTime(time as number).slice(11, 19);
      const label = String(level).toUpperCase().padEnd(5);
      const extra = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
      printErr(`${when} \x1b[${LEVEL_COLOURS[String(level)] ?? "0"}m${label}\x1b[0m ${msg}${extra ? ` ${extra}` : ""}\n`);
    },
  };
}
