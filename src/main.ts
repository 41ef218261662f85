// Entry point of the ES module bundle (dist/agenixd.mjs): `node dist/agenixd.mjs activate …`.
import { main } from "./cli.js";
import { exitProcess } from "./exit.js";

// main() has written, notified and released everything by the time it resolves (src/exit.ts).
exitProcess(await main(process.argv.slice(2), import.meta.url));
