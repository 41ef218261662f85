# agenixd's native addon (agenixd.c), built by scripts/bundle.mjs with node-gyp (Node-API only:
# one build runs on every node of the same platform that supports Node-API 8).
{
  "targets": [
    {
      "target_name": "agenixd",
      "sources": ["agenixd.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"],
    }
  ]
}
