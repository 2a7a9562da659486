// llama.cpp, through a real client of it (node-llama-cpp 3.21.1 and its prebuilt Linux binary), loads the GGUF files
// unmask writes and runs them: models from `init` (llama, qwen2; llada, dream, llada-moe), a trained checkpoint exported as a model,
// the shipped trained model in bf16 and f32, and its quantizations. On the trained causal model in bf16 and f32 the
// greedy completions of llama.cpp and unmask agree token for token; on quantized and random models they agree up to a
// near-tie (where the log-probabilities of the two tokens under llama.cpp are within kNearTie of each other), which
// the test reports: the two engines round activations and sum in different orders (unmask multiplies prompts of more
// than a few tokens on f32 activations, llama.cpp on int8-quantized ones). The KV cache is kept in f32 on both sides (llama.cpp's default is f16).
//
//   UNMASK_BINARY=build/release/unmask node tests/tools/llama_cpp/llama_cpp.test.mjs
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";
import assert from "node:assert/strict";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../../..");
const unmask = process.env.UNMASK_BINARY ?? path.join(root, "build/release/unmask");
const kNearTie = 0.1;  // gap of the two tokens' log-probabilities below which a differing choice is a near-tie
const kTokens = 32;
const prompts = ["In the beginning", "And the LORD said unto Moses", "Blessed are the", "The earth was without form",
                 "And it came to pass", "Let there be"];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "unmask-llama-cpp-"));
process.on("exit", () => fs.rmSync(dir, {recursive: true, force: true}));
const run = (...args) => execFileSync(unmask, args, {encoding: "utf8", stdio: ["ignore", "pipe", "pipe"]});
const file = (name) => path.join(dir, name);

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});

// unmask's greedy completion of prompt ids: the generated ids.
function unmaskGreedy(model, ids, n) {
  const out = JSON.parse(run("generate", "-m", model, "--prompt-tokens", ids.join(","), "-n", String(n), "--temp", "0",
                             "--json", "-t", "2"));
  return out.ids;
}

// llama.cpp's greedy completion: each step's token and the probability list it was chosen from.
async function llamaGreedy(sequence, ids, n) {
  await sequence.clearHistory();
  const steps = [];
  for await (const s of sequence.evaluateWithMetadata(ids, {probabilities: true}, {temperature: 0})) {
    steps.push(s);
    if (steps.length >= n) break;
  }
  return steps;
}

// Compares the two completions. Exact: every token equal. Otherwise equal up to the first difference, which must be a
// near-tie under llama.cpp's probabilities. Returns how many tokens agreed before the first difference.
function compare(name, prompt, ours, theirs, exact) {
  const n = Math.min(ours.length, theirs.length);
  for (let i = 0; i < n; ++i) {
    if (ours[i] === theirs[i].token) continue;
    const p = theirs[i].probabilities;
    const top = p.get(theirs[i].token) ?? 0, mine = p.get(ours[i]) ?? 0;
    const gap = top > 0 && mine > 0 ? Math.log(top / mine) : Infinity;
    const where = `${name}, prompt [${prompt}], token ${i}: unmask ${ours[i]}, llama.cpp ${theirs[i].token} ` +
                  `(llama.cpp's probabilities ${top.toPrecision(4)} and ${mine.toPrecision(4)}, log gap ${gap.toFixed(4)})`;
    assert.ok(!exact, `completions differ at ${where}`);
    assert.ok(gap < kNearTie, `completions differ beyond a near-tie at ${where}`);
    console.log(`  near-tie: ${where}`);
    return i;
  }
  return n;
}

// Loads the file in llama.cpp and checks what the file says about itself; returns the model.
async function load(model, {arch, vocab}) {
  const m = await llama.loadModel({modelPath: model});
  const meta = m.fileInfo.metadata;
  assert.equal(meta.general.architecture, arch, `${model}: architecture`);
  assert.equal(llamaVocab(m), vocab, `${model}: vocabulary size`);
  return m;
}
const llamaVocab = (m) => m.fileInfo.metadata.tokenizer.ggml.tokens.length;

// Greedy completions of every prompt by both; token ids from unmask's tokenizer (the file's own).
async function agree(name, model, {arch, vocab, exact, n_prompts = prompts.length}) {
  const m = await load(model, {arch, vocab});
  const context = await m.createContext({contextSize: 256, threads: 2, experimentalKvCacheKeyType: "F32",
                                         experimentalKvCacheValueType: "F32"});
  const sequence = context.getSequence();
  let agreed = 0, total = 0;
  for (const prompt of prompts.slice(0, n_prompts)) {
    const ids = run("tokenize", "-m", model, "-p", prompt, "--add-special").trim().split(/[ ,]+/).map(Number);
    const ours = unmaskGreedy(model, ids, kTokens);
    const theirs = await llamaGreedy(sequence, ids, ours.length);
    agreed += compare(name, prompt, ours, theirs, exact);
    total += ours.length;
  }
  console.log(`${name}: llama.cpp loads it; greedy completions agree on ${agreed}/${total} tokens`);
  await context.dispose();
  await m.dispose();
}

const shipped = path.join(root, "models/kjv-ar.gguf");
const V = 2048;  // the shipped models' vocabulary

// The trained causal model as shipped (bf16) and in f32: token for token.
await agree("kjv-ar (trained, bf16)", shipped, {arch: "llama", vocab: V, exact: true});
run("export", shipped, file("kjv-ar-f32.gguf"), "--type", "f32");
await agree("kjv-ar (trained, f32)", file("kjv-ar-f32.gguf"), {arch: "llama", vocab: V, exact: true});

// Its quantizations, every type `unmask quantize` writes: up to a near-tie.
const types = run("quantize", "--help").match(/--type[^\n]*\n?[^\n]*/)[0];
for (const type of ["q8_0", "q4_0", "q4_k_m", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_m", "q5_k_m", "q6_k"]) {
  if (!types.includes(type)) continue;  // a type this build does not write yet
  run("quantize", shipped, file(`kjv-ar-${type}.gguf`), "--type", type);
  await agree(`kjv-ar ${type}`, file(`kjv-ar-${type}.gguf`), {arch: "llama", vocab: V, exact: false, n_prompts: 3});
}

// Models from `init` with a vocabulary (llama.cpp needs one to tokenize): causal runs; diffusion (llada) loads with
// the diffusion keys llama.cpp's diffusion CLI reads.
run("init", "--config", "tiny", "--arch", "llama", "--tokenizer", shipped, "-o", file("init-llama.gguf"));
await agree("init llama (random)", file("init-llama.gguf"), {arch: "llama", vocab: V, exact: false, n_prompts: 3});
run("init", "--config", "tiny", "--arch", "qwen2", "--tokenizer", shipped, "-o", file("init-qwen2.gguf"));
await agree("init qwen2 (random)", file("init-qwen2.gguf"), {arch: "qwen2", vocab: V, exact: false, n_prompts: 3});
const moe = ["--experts", "4", "--experts-used", "2", "--expert-ffn", "64"];
for (const [arch, extra, shift] of [["llada", [], false], ["dream", [], true], ["llada-moe", moe, false]]) {
  const f = file(`init-${arch}.gguf`);
  run("init", "--config", "tiny", "--arch", arch, "--tokenizer", "byte", ...extra, "-o", f);
  const m = await load(f, {arch, vocab: 260});
  assert.equal(m.fileInfo.metadata.diffusion?.shift_logits ?? true, shift, `${arch}: diffusion.shift_logits`);
  assert.ok(m.fileInfo.metadata.tokenizer.ggml.mask_token_id >= 0, `${arch}: a mask token`);
  console.log(`init ${arch} (random): llama.cpp loads it (diffusion.shift_logits ${shift}, mask token ` +
              `${m.fileInfo.metadata.tokenizer.ggml.mask_token_id})`);
  await m.dispose();
}

// A training run's checkpoint exported as a model.
fs.writeFileSync(file("corpus.txt"), prompts.map((p, i) => `${p} ${prompts[(i + 1) % prompts.length]}.\n`).join("")
                                   .repeat(40));
run("data", "prepare", "-f", file("corpus.txt"), "--tokenizer", shipped, "-o", file("data"));
run("train", "--objective", "ar", "--data", file("data"), "--config", "tiny", "--steps", "30", "--warmup", "5",
    "--batch", "4", "--seq-len", "32", "-o", file("run"));
run("export", file("run"), file("trained.gguf"));
await agree("trained 30 steps, exported", file("trained.gguf"), {arch: "llama", vocab: V, exact: false, n_prompts: 3});

console.log("ok");
