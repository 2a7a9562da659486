// unmask eval: how good a model is. `eval ppl` (exact NLL of an AR model) and `eval elbo` (the diffusion bound,
// Monte-Carlo with its standard error; LLaDA's conditional estimator with --prompt/--answer; --exact by enumeration)
// score a text here; `eval gen` scores samples with a judge model (eval_gen.cpp); `eval task` runs the generated
// tasks (eval_task.cpp). The estimators are the library's (unmask/eval/likelihood.h).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "model_file.h"
#include "progress.h"
#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/diffusion/noise.h"
#include "unmask/eval/likelihood.h"
#include "unmask/model/model.h"
#include "unmask/tokenizer/tokenizer.h"
#include "version.h"

namespace unmask::cli {

namespace {

struct LikelihoodOptions {
  std::string model, text, prompt, answer;
  std::vector<int32_t> tokens, prompt_tokens, answer_tokens;
  int context = 0, stride = 0, samples = 64, mc = 128, threads = 0;
  uint64_t seed = 0;
  bool independent = false, exact = false, json = false;
};

Tokenizer& need_tokenizer(const std::unique_ptr<Tokenizer>& tok, const std::string& model, const char* flag,
                          const char* ids_flag) {
  check(tok != nullptr, "{}: {} carries no tokenizer; give token ids with {}", flag, model, ids_flag);
  return *tok;
}

// The ids of --text F (encoded with the tokenizer's BOS, as a document starts) or --tokens.
std::vector<int32_t> text_tokens(const LikelihoodOptions& o, const std::unique_ptr<Tokenizer>& tok) {
  check(o.text.empty() != o.tokens.empty(), "give exactly one of --text FILE and --tokens 1,2,3");
  if (!o.tokens.empty()) return o.tokens;
  const std::string text = read_text_file(o.text);
  check(!text.empty(), "--text {}: the file is empty", o.text);
  std::vector<int32_t> ids = need_tokenizer(tok, o.model, "--text", "--tokens").encode(text, true);
  check(o.context == 0 || int(ids.size()) >= o.context, "--text {}: {} tokens, shorter than one window of --context "
        "{}; give a longer text or a smaller --context", o.text, ids.size(), o.context);
  return ids;
}

std::vector<int32_t> part_tokens(const std::string& text, const std::vector<int32_t>& ids, bool first,
                                 const LikelihoodOptions& o, const std::unique_ptr<Tokenizer>& tok) {
  if (!ids.empty()) return ids;
  return need_tokenizer(tok, o.model, first ? "--prompt" : "--answer", first ? "--prompt-tokens" : "--answer-tokens")
      .encode(text, first);
}

nlohmann::json likelihood_json(const Likelihood& r, const LikelihoodOptions& o, const std::string& extra_key,
                               const nlohmann::json& extra) {
  nlohmann::json j = {{"model", o.model}, {"method", r.method}, {"tokens", r.count}, {"windows", r.windows},
                      {"nll", r.nll}, {"nll_per_token", r.per_token()}, {"ppl", r.ppl()},
                      {"token_nll", r.token_nll}, {"commit", UNMASK_COMMIT}};
  if (r.samples > 0)
    j.update({{"samples", r.samples}, {"se", r.se}, {"se_per_token", r.per_token_se()}, {"seed", o.seed},
              {"sampling", o.independent ? "independent" : "stratified"}});
  if (!extra_key.empty()) j[extra_key] = extra;
  return j;
}

void print_likelihood(const Likelihood& r, const LikelihoodOptions& o, const std::string& what,
                      const std::string& extra_key = {}, const nlohmann::json& extra = {}) {
  if (o.json) return fmt::print("{}\n", likelihood_json(r, o, extra_key, extra).dump());
  const bool bound = r.method != "ar";
  fmt::print("{}: {} tokens scored{}\n", what, r.count, r.windows > 1 ? fmt::format(" in {} windows", r.windows) : "");
  fmt::print("nll {} {:.4f}{} nats/token   ppl {} {:.3f}   total {:.2f} nats\n", bound ? "<=" : "=", r.per_token(),
             r.samples > 0 ? fmt::format(" ± {:.4f}", r.per_token_se()) : "", bound ? "<=" : "=", r.ppl(), r.nll);
  if (r.samples > 0)
    fmt::print("{} Monte-Carlo samples per window ({}), seed {}; ± is one standard error\n", r.samples,
               o.independent ? "independent" : "stratified", o.seed);
}

EvalProgress progress_bar(bool on, const char* unit) {
  if (!on) return {};
  return [unit](int64_t done, int64_t total) { draw_progress("eval", done, total, unit); };
}

void run_ppl(const LikelihoodOptions& o) {
  set_num_threads(o.threads);
  Model m = Model::load(o.model);
  const auto tok = model_tokenizer(o.model);
  const std::vector<int32_t> ids = text_tokens(o, tok);
  const Likelihood r = ar_likelihood(m, ids, {o.context, o.stride}, progress_bar(!o.json, "windows"));
  const int C = o.context > 0 ? o.context : m.config().ctx;
  const int S = o.stride > 0 ? o.stride : C - 1;
  print_likelihood(r, o, fmt::format("eval ppl (context {}, stride {})", C, S), "window", {{"context", C}, {"stride", S}});
}

void run_conditional(const LikelihoodOptions& o, Model& m, const std::unique_ptr<Tokenizer>& tok) {
  check(o.text.empty() && o.tokens.empty(), "--prompt/--answer score an answer given a prompt: leave out --text and "
        "--tokens");
  check(!o.answer.empty() || !o.answer_tokens.empty(), "give the answer to score with --answer or --answer-tokens");
  const auto prompt = part_tokens(o.prompt, o.prompt_tokens, true, o, tok);
  const auto answer = part_tokens(o.answer, o.answer_tokens, false, o, tok);
  const Likelihood r = conditional_elbo(m, prompt, answer, o.mc, o.seed);
  print_likelihood(r, o, fmt::format("eval elbo (LLaDA's conditional estimator, prompt {} tokens)", prompt.size()),
                   "prompt_tokens", prompt.size());
}

void run_elbo(const LikelihoodOptions& o) {
  set_num_threads(o.threads);
  Model m = Model::load(o.model);
  const auto tok = model_tokenizer(o.model);
  if (!o.prompt.empty() || !o.prompt_tokens.empty() || !o.answer.empty() || !o.answer_tokens.empty())
    return run_conditional(o, m, tok);
  const std::vector<int32_t> ids = text_tokens(o, tok);
  if (o.exact) {
    check(o.context == 0, "--exact enumerates the text as one window: leave out --context");
    return print_likelihood(exact_elbo(m, ids), o, "eval elbo --exact (every mask enumerated)");
  }
  const NoiseSchedule ns = model_schedule(m.config());
  ElboOptions eo{o.context, o.samples, !o.independent, o.seed, ns};
  const Likelihood r = diffusion_elbo(m, ids, eo, progress_bar(!o.json, "tokens"));
  print_likelihood(r, o, fmt::format("eval elbo ({} bound, {} schedule)", r.method == "bd3-elbo" ? "block" : "masked",
                                     schedule_name(ns.kind)),
                   "schedule", schedule_name(ns.kind));
}

void add_text_options(CLI::App* cmd, LikelihoodOptions& o) {
  cmd->add_option("-m,--model", o.model, "GGUF model file or Hugging Face folder")->required();
  cmd->add_option("--text", o.text, "Score this text file (encoded with the model's tokenizer, BOS first)");
  add_tokens_option(cmd, "--tokens", o.tokens, "Score these token ids");
  cmd->add_option("--context", o.context, "Window length in tokens (default: the model's context)")
      ->check(positive());
  cmd->add_flag("--json", o.json, "Print every figure, per-token values included, as one JSON object");
  add_threads_option(cmd, o.threads);
}

}  // namespace

void add_eval(CLI::App& app) {
  auto* eval = app.add_subcommand("eval", "Measure a model: likelihood (ppl, elbo), sample quality (gen), tasks (task)");
  eval->require_subcommand(1);
  auto po = std::make_shared<LikelihoodOptions>();
  auto* ppl = eval->add_subcommand("ppl", "Perplexity of an AR model: exact NLL per token, sliding window");
  add_text_options(ppl, *po);
  ppl->add_option("--stride", po->stride, "Start a window every N tokens; each scores only tokens the previous did "
                  "not (default: the window length less one)")->check(positive());
  ppl->callback([po] { run_ppl(*po); });

  auto eo = std::make_shared<LikelihoodOptions>();
  auto* elbo = eval->add_subcommand("elbo", "Upper bound on a diffusion model's NLL (the ELBO), Monte-Carlo over the "
                                    "diffusion time with its standard error, in the model's own noise schedule; "
                                    "block-causal models get the block-diffusion bound");
  add_text_options(elbo, *eo);
  elbo->add_option("--samples", eo->samples, "Monte-Carlo samples of t per window")->capture_default_str()
      ->check(positive());
  elbo->add_flag("--independent", eo->independent, "Draw t independently (default: stratified, t_k = 1 - (u + k)/K)");
  elbo->add_flag("--exact", eo->exact, "Enumerate every mask instead (at most 16 maskable tokens)")
      ->excludes("--samples")->excludes("--independent");
  elbo->add_option("--prompt", eo->prompt, "LLaDA's conditional estimator: -log p(answer | prompt); prompt text");
  elbo->add_option("--answer", eo->answer, "The answer text (scored given the prompt)");
  add_tokens_option(elbo, "--prompt-tokens", eo->prompt_tokens, "The prompt as ids");
  add_tokens_option(elbo, "--answer-tokens", eo->answer_tokens, "The answer as ids");
  elbo->add_option("--mc", eo->mc, "Conditional estimator: Monte-Carlo samples (l of L answer tokens masked, l "
                   "stratified)")->capture_default_str()->check(positive());
  add_seed_option(elbo, eo->seed, "Seed of the Monte-Carlo draws");
  elbo->callback([eo] { run_elbo(*eo); });
  add_eval_gen(*eval);
  add_eval_task(*eval);
}

}  // namespace unmask::cli
