// agenixd command line (placeholder until the pipeline lands).
console.error("agenixd: not implemented yet");
process.exit(2);
