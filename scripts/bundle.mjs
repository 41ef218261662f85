// Bundles the CLI into dist/ so that a start loads one file instead of hundreds of modules.
// Dynamic imports become separate chunks, loaded only when a code path needs them.
import { build } from "esbuild";

await build({
  entryPoints: { agenixd: "src/cli.ts" },
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // sd-notify is a native addon found through `bindings`; it must stay a real package.
  external: ["sd-notify"],
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __agenixdCreateRequire } from 'node:module';\nconst require = __agenixdCreateRequire(import.meta.url);",
  },
  logLevel: "warning",
});
