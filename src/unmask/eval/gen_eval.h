// Generation quality, measured so that a degenerate sampler cannot look good (`unmask eval gen`; the definitions are
// in docs/evaluation-gen.md): N prompts are sampled with one sampler configuration at several temperatures, and each
// set of samples is scored by a judge, an AR model sharing the vocabulary:
//
//   gen-ppl           exp(Σ NLL / Σ tokens) of the generated tokens under the judge, each given its prompt and the
//                     sample before it (pooled over every generated token of every sample);
//   entropy, distinct-1..4, rep-4    (eval/quality.h) on the generated token ids;
//   MAUVE             against the reference texts (the true continuations of the prompts, or windows of the reference
//                     text when unconditional), on the judge's features: its final-normed hidden state averaged over
//                     the generated positions. Low gen-ppl alone rewards repetition; low entropy / distinct-n or a
//                     MAUVE far below the reference's show it;
//   EM, CER           when the prompts are cut from the reference: the sample's text against the true continuation.
//
//   EvalPrompts ps = cut_reference(ref_ids, 64, 32, 128, mc.bos_token);
//   GenEvalOptions o;  o.sampler = cfg;  o.temperatures = {0.7, 1.0};
//   GenEvalReport r = run_gen_eval(model, judge, ps, o, tok.get());
//
// Deterministic by seed: sample i is drawn with a seed derived from o.seed and i alone (the same at every
// temperature), generation runs in batches of fixed composition, and the scoring is sequential or per fixed chunk.
#pragma once

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "unmask/eval/quality.h"
#include "unmask/model/model.h"
#include "unmask/sampling/sampler.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask {

using TokenLists = std::vector<std::vector<int32_t>>;

// The prompts, and when they come from a reference text the true continuation of each.
struct EvalPrompts {
  TokenLists prompts;        // (samples) the BOS (when the vocabulary has one) and prompt_tokens reference tokens
  TokenLists continuations;  // (samples) the reference's gen_length tokens after each prompt; empty without reference
  int prompt_tokens = 0;     // reference tokens in each prompt (0: unconditional)
};

// samples disjoint windows of prompt_tokens + gen_length tokens, the i-th starting at i · ⌊L / samples⌋ of the
// reference (L tokens). Throws when the reference is shorter than samples windows, or gen_length < 1.
EvalPrompts cut_reference(std::span<const int32_t> reference, int samples, int prompt_tokens, int gen_length,
                          int32_t bos);
// samples prompts of the BOS alone; with a reference, the continuations are its windows of gen_length tokens (the
// texts MAUVE compares with). Throws when the vocabulary has no BOS.
EvalPrompts unconditional_prompts(int samples, int32_t bos, std::span<const int32_t> reference = {},
                                  int gen_length = 0);

// Throws when the judge cannot score the model's samples: a judge without a causal mask, another vocabulary size, or
// (when both carry a tokenizer) a token that differs.
void check_judge(const ModelConfig& model, const ModelConfig& judge, const Tokenizer* model_tok,
                 const Tokenizer* judge_tok);

// What the judge says about texts, each a prompt followed by its generated part.
struct JudgeScores {
  std::vector<double> nll;      // (n) NLL (nats) of each text's generated tokens, summed
  std::vector<int64_t> count;   // (n) generated tokens scored
  std::vector<float> features;  // (n, dim) mean hidden state over the generated positions (the last prompt position
                                // for an empty sample)
  int dim = 0;
  double nll_per_token() const;  // Σ nll / Σ count
};
JudgeScores judge_texts(Model& judge, const TokenLists& prompts, const TokenLists& generated);

// The figures of one set of texts.
struct TextFigures {
  double gen_ppl = 0, nll_per_token = 0;
  int64_t tokens = 0;                 // generated tokens in all
  double mean_length = 0;             // tokens per sample
  int empty = 0;                      // samples without a token (EOS first)
  double entropy = 0;                 // unigram_entropy, nats
  std::array<double, 4> distinct{};   // distinct-1 .. distinct-4
  double rep4 = 0;                    // repetition_rate(4)
};
TextFigures text_figures(const TokenLists& generated, const JudgeScores& j);

struct GenEvalOptions {
  SamplerConfig sampler;              // temperature and seed are set per sample by the sweep
  std::vector<double> temperatures;   // at least one, each finite and >= 0
  uint64_t seed = 0;
  int batch = 8;                      // requests generated together (generate_batch)
  MauveOptions mauve;                 // its seed: o.seed
};

struct GenEvalPoint {
  double temperature = 0;
  TextFigures figures;
  std::optional<MauveResult> mauve;                  // with continuations
  std::optional<double> exact_match, cer;            // with prompts cut from the reference (means over samples)
  int64_t forward_passes = 0;                        // Σ over the samples of their model calls
  double seconds = 0;                                // wall time of the generation
  double tokens_per_second() const { return seconds > 0 ? figures.tokens / seconds : 0.0; }
  double tokens_per_forward() const { return forward_passes ? double(figures.tokens) / forward_passes : 0.0; }
  TokenLists samples;                                // (samples) generated ids, cut before the first EOS
};

struct GenEvalReport {
  std::vector<GenEvalPoint> points;          // one per temperature, in the order given
  std::optional<TextFigures> reference;      // the continuations scored as samples (the data's own point)
};

// done of total samples generated so far.
using GenEvalProgress = std::function<void(int64_t done, int64_t total)>;

// Samples every prompt at every temperature and scores the samples. tok: decodes text for EM and CER (without one
// the ids are compared, joined by spaces). Throws for bad options, a judge that does not fit (check_judge), a text
// that does not fit either model's context, and a sample whose generation failed.
GenEvalReport run_gen_eval(Model& model, Model& judge, const EvalPrompts& prompts, const GenEvalOptions& o,
                           const Tokenizer* tok, const GenEvalProgress& progress = {});

// Every figure of the report (samples as ids and, with a tokenizer, text).
nlohmann::json report_json(const GenEvalReport& r, const Tokenizer* tok);

}  // namespace unmask
