// agenixd itself in the plain bundle (dist/agenixd-main.cjs), which src/code-cache.ts loads:
// `node dist/agenixd.cjs activate …`. tsc's build/src/main.js, an ES module, runs it too.
import { pathToFileURL } from "node:url";
import { main } from "./cli.js";
import { exitProcess } from "./exit.js";
import { CODE_CACHE_WARM_UP, readWarmUpMaterial, warmUp } from "./warm-up.js";

const self = typeof __filename === "string" ? pathToFileURL(__filename).href : import.meta.url;
const warmUpMaterial = (globalThis as Record<symbol, unknown>)[CODE_CACHE_WARM_UP];
if (typeof warmUpMaterial === "string") {
  // The build making the code caches (src/code-cache.ts): whole activations instead of a command.
  void warmUp(readWarmUpMaterial(warmUpMaterial));
} else {
  // main() has written, notified and released everything by the time it resolves (src/exit.ts).
  void main(process.argv.slice(2), self).then(exitProcess);
}
