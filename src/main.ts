// Entry point of the plain bundle (dist/agenixd.cjs): `node dist/agenixd.cjs activate …`.
// tsc's build/src/main.js, an ES module, runs it too.
import { pathToFileURL } from "node:url";
import { main } from "./cli.js";
import { exitProcess } from "./exit.js";

const self = typeof __filename === "string" ? pathToFileURL(__filename).href : import.meta.url;
// main() has written, notified and released everything by the time it resolves (src/exit.ts).
void main(process.argv.slice(2), self).then(exitProcess);
