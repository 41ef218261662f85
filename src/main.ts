// Entry point of the ES module bundle (dist/agenixd.mjs): `node dist/agenixd.mjs activate …`.
import { main } from "./cli.js";

// main() has written, notified and released everything by the time it resolves; process.exit()
// skips tearing down the heap, which would only delay the end of the unit by a few milliseconds.
process.exit(await main(process.argv.slice(2), import.meta.url));
