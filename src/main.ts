// Entry point of the ES module bundle (dist/agenixd.mjs): `node dist/agenixd.mjs activate …`.
import { main } from "./cli.js";

process.exitCode = await main(process.argv.slice(2), import.meta.url);
