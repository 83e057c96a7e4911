// bench/llamacpp.mjs — llama.cpp on the same GGUF files, for the comparison row of `make bench`.
//
//   node bench/llamacpp.mjs MODEL.gguf [--threads N] [--prompt-tokens 64] [--gen-tokens 32] [--reps 3]
//
// llama.cpp is not in Debian 12; the npm package node-llama-cpp ships its prebuilt CPU builds
// (one per x86 micro-architecture, chosen at run time). Install it outside the repository, e.g.
//   npm install --prefix /tmp/llamacpp node-llama-cpp@3.22.1
// and point NODE_PATH (or LLAMACPP_NODE_MODULES) at its node_modules. Nothing in the build or the
// tests uses it.
//
// Measured as `troupe bench` measures: the prompt as one batch (prompt tok/s), then greedy
// generation token by token (generation tok/s), best of --reps, one JSON line on stdout.
import { createRequire } from "node:module";
import path from "node:path";

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const model = args.find((a, i) => !a.startsWith("--") && (i === 0 || !args[i - 1].startsWith("--")));
if (!model) {
  console.error("usage: node bench/llamacpp.mjs MODEL.gguf [--threads N] [--prompt-tokens 64] [--gen-tokens 32] [--reps 3]");
  process.exit(2);
}
const threads = flag("--threads", 0);
const promptTokens = flag("--prompt-tokens", 64);
const genTokens = flag("--gen-tokens", 32);
const reps = flag("--reps", 3);

const modules = process.env.LLAMACPP_NODE_MODULES;
const require = createRequire(modules ? path.join(modules, "x.js") : import.meta.url);
let lib;
try {
  lib = await import(require.resolve("node-llama-cpp"));
} catch (e) {
  console.error(`bench/llamacpp.mjs: node-llama-cpp not found (${e.message}); see the top of this file`);
  process.exit(2);
}

const llama = await lib.getLlama({ gpu: false, build: "never", logLevel: "error" });
const m = await llama.loadModel({ modelPath: model, gpuLayers: 0, useMmap: false });
// Prompt: the same text troupe bench feeds, cut to --prompt-tokens ids after BOS.
const text = "Once upon a time there was a little girl named Lily who loved to play outside in the park. ".repeat(8);
const prompt = m.tokenize(text).slice(0, promptTokens);
const ctx = await m.createContext({
  contextSize: 512, batchSize: 512, threads: threads || 0, sequences: 1,
  // Dispatch each batch at once (the default waits for the next event-loop cycle).
  batching: { dispatchSchedule: (dispatch) => dispatch() },
});

let best = { prompt: 0, gen: 0 };
for (let r = 0; r < reps; r++) {
  const seq = ctx.getSequence();
  // The prompt as one batch, until its first token; then greedy generation of genTokens more.
  const t0 = performance.now();
  let t1 = 0;
  let n = 0;
  for await (const token of seq.evaluate(prompt, { temperature: 0 })) {
    if (n === 0) t1 = performance.now();
    if (n++ === genTokens) break;
  }
  const t3 = performance.now();
  const promptRate = prompt.length / ((t1 - t0) / 1000);  // includes sampling the first token
  const genRate = genTokens / ((t3 - t1) / 1000);
  best = { prompt: Math.max(best.prompt, promptRate), gen: Math.max(best.gen, genRate) };
  seq.dispose();
}
console.log(JSON.stringify({
  engine: "llama.cpp (node-llama-cpp)",
  model: path.basename(model), threads: ctx.currentThreads ?? threads,
  prompt_tokens: prompt.length, gen_tokens: genTokens,
  prompt_tok_s: +best.prompt.toFixed(2), gen_tok_s: +best.gen.toFixed(2),
}));
await ctx.dispose();
await m.dispose();
await llama.dispose();
