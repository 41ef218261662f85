// node:child_process, loaded at its first use. Most starts run no other program (no unit is
// restarted at boot, no plugin, no systemd-creds), and loading it (with net, dgram and their
// bindings) costs a start of the plain bundle ~5 ms. The snapshot holds it already.
import type * as ChildProcess from "node:child_process";

let loaded: typeof ChildProcess | undefined;

export function childProcess(): typeof ChildProcess {
  return (loaded ??= process.getBuiltinModule("node:child_process"));
}
