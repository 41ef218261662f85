// Bundles the CLI into dist/ so that a start loads one file instead of hundreds of modules.
// Dynamic imports become separate chunks, loaded only when a code path needs them (sshpk for
// SSH identity files, age-encryption for ML-KEM hybrid keys). docs/performance.md has the numbers.
import { build } from "esbuild";

const outdir = process.env.AGENIXD_BUNDLE_OUTDIR ?? "dist";

/**
 * pino.transport() runs log transports in worker threads (thread-stream, atomic-sleep, …).
 * agenixd only ever logs to fd 2 with pino.destination(), so the bundle gets a stub that
 * fails loudly if a transport is ever configured, and skips parsing ~30 KB on every start.
 */
const pinoWithoutTransports = {
  name: "pino-without-transports",
  setup(b) {
    b.onResolve({ filter: /^\.\/(lib\/)?transport$/ }, (args) =>
      /[\\/]node_modules[\\/]pino[\\/]/.test(args.importer) ? { path: "pino-transport", namespace: "agenixd-stub" } : undefined);
    b.onLoad({ filter: /^pino-transport$/, namespace: "agenixd-stub" }, () => ({
      contents: "module.exports = function transport() { throw new Error('pino transports are not bundled into agenixd'); };",
      loader: "js",
    }));
  },
};

await build({
  entryPoints: { agenixd: "src/cli.ts" },
  outdir,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // sd-notify is a native addon found through `bindings`; it must stay a real package.
  external: ["sd-notify"],
  plugins: [pinoWithoutTransports],
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __agenixdCreateRequire } from 'node:module';\nconst require = __agenixdCreateRequire(import.meta.url);",
  },
  logLevel: "warning",
});
