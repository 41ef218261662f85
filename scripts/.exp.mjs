import { build } from "esbuild";
const pinoWithoutWorkers = {
  name: "pino-without-workers",
  setup(b) {
    const fromPino = (args) => /[\\/]node_modules[\\/]pino[\\/]/.test(args.importer);
    b.onResolve({ filter: /^\.\/(lib\/)?transport$/ }, (args) => (fromPino(args) ? { path: "pino-transport", namespace: "agenixd-stub" } : undefined));
    b.onResolve({ filter: /^(node:)?worker_threads$/ }, (args) => (fromPino(args) ? { path: "worker-threads", namespace: "agenixd-stub" } : undefined));
    b.onLoad({ filter: /^pino-transport$/, namespace: "agenixd-stub" }, () => ({ contents: "module.exports = function transport() { throw new Error('x'); };", loader: "js" }));
    b.onLoad({ filter: /^worker-threads$/, namespace: "agenixd-stub" }, () => ({ contents: "module.exports = { isMainThread: true };", loader: "js" }));
  },
};
const sshpkApart = { name: "sshpk-apart", setup(b) { b.onResolve({ filter: /^sshpk$/ }, (a) => a.importer.includes("/src/") ? { path: "./sshpk.cjs", external: true } : undefined); } };
const common = { bundle: true, platform: "node", target: "node22", define: { AGENIXD_VERSION: '"0.1.0"' }, logLevel: "warning", minifyWhitespace: true, minifySyntax: true, format: "cjs" };
await build({ ...common, plugins: [pinoWithoutWorkers, sshpkApart], external: ["age-encryption"], entryPoints: ["src/main-cjs-exp.ts"], outfile: "/tmp/dist-cjs/agenixd.cjs" });
await build({ ...common, stdin: { contents: 'module.exports = require("sshpk");', resolveDir: ".", loader: "js" }, outfile: "/tmp/dist-cjs/sshpk.cjs" });
