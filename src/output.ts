// What agenixd prints (usage, status, reports, its own errors) goes to fd 1 and fd 2 with
// writeSync, all of it, before the call returns. node's process.stdout and process.stderr queue
// what a pipe does not take at once and drop it at process.exit() (past 64 KiB to a slow reader:
// `agenixd status --json | …` of a large generation), and building either stream costs a start
// ~0.3 ms. An fd left non-blocking by whoever opened it gets EAGAIN when full: wait and go on.
import { writeSync } from "node:fs";

// Made at the first EAGAIN: a snapshot builder has no SharedArrayBuffer.
let pause: Int32Array | undefined;

function writeAll(fd: number, text: string): void {
  const data = Buffer.from(text, "utf8");
  let at = 0;
  let stalls = 0;
  while (at < data.length) {
    try {
      at += writeSync(fd, data, at, data.length - at);
      stalls = 0;
    } catch (e) {
      // A reader that takes nothing for a minute is gone in all but name: give up on the output, not the run.
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN" || ++stalls > 60_000) return;
      Atomics.wait((pause ??= new Int32Array(new SharedArrayBuffer(4))), 0, 0, 1);
    }
  }
}

/** To stdout, whole. A closed or failing stdout loses the text, as a shell's echo would. */
export function printOut(text: string): void {
  writeAll(1, text);
}

/** To stderr, whole. */
export function printErr(text: string): void {
  writeAll(2, text);
}
