// unmask eval gen: the quality of a sampler's text, judged by an AR model sharing the vocabulary (the AR twin):
// generative perplexity together with unigram entropy, distinct-n and repetition, swept over temperatures so that the
// table draws the frontier, MAUVE against held-out text (the judge's hidden states as features), and exact match /
// character error rate against the true continuations when the prompts are cut from that text. The sweep and every
// metric are the library's (unmask/eval/gen_eval.h, quality.h; definitions in docs/evaluation-gen.md); this file
// reads flags and prints.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "model_file.h"
#include "progress.h"
#include "sampler_options.h"
#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/eval/gen_eval.h"
#include "unmask/model/model.h"
#include "unmask/sampling/sampler.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask::cli {

namespace {

struct EvalGenOptions {
  std::string model, judge, reference;
  int samples = 64, prompt_tokens = 0, clusters = 0, batch = 8, threads = 0;
  std::vector<double> temps{0.7, 0.85, 1.0};
  SamplerOptions sampler;
  bool json = false;
  std::function<bool(const std::string&)> given;
};

// The command line as the process got it (for the JSON record).
std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), out;
  for (char c : all) out += c == '\0' ? ' ' : c;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

void check_flags(const EvalGenOptions& o) {
  check(!o.given("--temp"), "--temp: eval gen samples at every temperature of --temps (e.g. --temps 0.7,1.0)");
  for (double t : o.temps)
    check(std::isfinite(t) && t >= 0, "--temps: {} is not a temperature (expected numbers >= 0; 0 is greedy)", t);
  check(o.prompt_tokens == 0 || !o.reference.empty(), "--prompt-tokens {}: prompts are cut from the reference text; "
        "give it with --reference FILE", o.prompt_tokens);
}

// The reference's token ids (no BOS), or none without --reference.
std::vector<int32_t> reference_ids(const EvalGenOptions& o, const Tokenizer* tok) {
  if (o.reference.empty()) return {};
  check(tok != nullptr, "--reference: {} carries no tokenizer to read the text with", o.model);
  const std::string text = read_text_file(o.reference);
  check(!text.empty(), "--reference {}: the file is empty", o.reference);
  return tok->encode(text, false, false);
}

EvalPrompts make_prompts(const EvalGenOptions& o, const ModelConfig& mc, const std::vector<int32_t>& ref) {
  const int n = o.sampler.cfg.gen_length;
  try {
    if (o.prompt_tokens > 0) return cut_reference(ref, o.samples, o.prompt_tokens, n, mc.bos_token);
    return unconditional_prompts(o.samples, mc.bos_token, ref, n);
  } catch (const Error& e) {
    if (o.reference.empty()) throw;
    fail("--reference {}: {}", o.reference, e.what());
  }
}

std::string cell(const std::optional<double>& v, const char* fmt_spec) {
  return v ? fmt::format(fmt::runtime(fmt_spec), *v) : "-";
}

std::string figure_cells(const TextFigures& f) {
  return fmt::format("{:>9} {:>7.3f} {:>6.3f} {:>6.3f} {:>6.3f} {:>6.3f} {:>6.3f}",
                     std::isnan(f.gen_ppl) ? "-" : fmt::format("{:.2f}", f.gen_ppl), f.entropy, f.distinct[0],
                     f.distinct[1], f.distinct[2], f.distinct[3], f.rep4);
}

void print_table(const GenEvalReport& r) {
  fmt::print("{:>6} {:>9} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>7}\n", "temp", "gen-ppl",
             "entropy", "dist-1", "dist-2", "dist-3", "dist-4", "rep-4", "MAUVE", "EM", "CER", "tok/s", "tok/fwd");
  for (const GenEvalPoint& p : r.points) {
    const std::optional<double> m = p.mauve ? std::optional<double>(p.mauve->mauve) : std::nullopt;
    fmt::print("{:>6.2f} {} {:>6} {:>6} {:>6} {:>9.1f} {:>7.2f}\n", p.temperature, figure_cells(p.figures),
               cell(m, "{:.3f}"), cell(p.exact_match, "{:.3f}"), cell(p.cer, "{:.3f}"), p.tokens_per_second(),
               p.tokens_per_forward());
  }
  if (r.reference) fmt::print("{:>6} {}   (the reference continuations, scored as samples)\n", "ref",
                              figure_cells(*r.reference));
}

nlohmann::json run_json(const EvalGenOptions& o, const GenEvalOptions& go, const GenEvalReport& r,
                        const Tokenizer* tok) {
  nlohmann::json j = report_json(r, tok);
  j["command"] = command_line();
  j["model"] = o.model, j["judge"] = o.judge;
  j["reference_file"] = o.reference.empty() ? nlohmann::json() : nlohmann::json(o.reference);
  j["seed"] = go.seed, j["samples"] = o.samples, j["prompt_tokens"] = o.prompt_tokens;
  j["sampler"] = sampler_kind_name(go.sampler.kind), j["gen_length"] = go.sampler.gen_length;
  j["steps"] = go.sampler.steps, j["block_length"] = go.sampler.block_length;
  j["temperatures"] = go.temperatures, j["mauve_clusters"] = o.clusters;
  return j;
}

void run_eval_gen(EvalGenOptions o) {
  set_num_threads(o.threads);
  check_flags(o);
  Model model = Model::load(o.model), judge = Model::load(o.judge);
  const std::unique_ptr<Tokenizer> tok = model_tokenizer(o.model), judge_tok = model_tokenizer(o.judge);
  try {
    check_judge(model.config(), judge.config(), tok.get(), judge_tok.get());
  } catch (const Error& e) {
    fail("--judge {}: {}", o.judge, e.what());
  }
  GenEvalOptions go;
  go.sampler = sampler_config(o.sampler, model.config(), false, o.given);
  go.temperatures = o.temps, go.seed = go.sampler.seed, go.batch = o.batch;
  go.mauve.clusters = o.clusters;
  const EvalPrompts prompts = make_prompts(o, model.config(), reference_ids(o, tok.get()));
  const GenEvalReport r = run_gen_eval(model, judge, prompts, go, tok.get(), [](int64_t done, int64_t total) {
    draw_progress("eval gen", done, total, "samples");
  });
  if (o.json) return fmt::print("{}\n", run_json(o, go, r, tok.get()).dump(-1, ' ', false,
                                                                           nlohmann::json::error_handler_t::replace));
  fmt::print("{} sampler {}, -n {}, {} samples{}, seed {}; judge {}\n", o.model, sampler_kind_name(go.sampler.kind),
             go.sampler.gen_length, o.samples,
             o.reference.empty() ? std::string(", unconditional")
                                 : fmt::format(", prompts of {} tokens from {}", o.prompt_tokens, o.reference),
             go.seed, o.judge);
  print_table(r);
}

}  // namespace

void add_eval_gen(CLI::App& eval) {
  auto* cmd = eval.add_subcommand("gen", "Sample quality judged by an AR model: gen-ppl with entropy, distinct-n and "
                                  "repetition over temperatures, MAUVE against held-out text, EM and CER");
  auto o = std::make_shared<EvalGenOptions>();
  cmd->add_option("-m,--model", o->model, "The model whose samples are judged (GGUF file or Hugging Face folder)")
      ->required();
  cmd->add_option("--judge", o->judge, "An AR model with the same tokenizer (e.g. the AR twin) that scores the "
                  "samples")->required();
  cmd->add_option("--reference", o->reference, "Held-out text: the texts MAUVE compares with and, with "
                  "--prompt-tokens, where the prompts and their true continuations (for EM and CER) are cut");
  cmd->add_option("--samples", o->samples, "Samples per temperature")->check(positive())->capture_default_str();
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "Prompt length cut from the reference (0: unconditional, "
                  "the BOS alone)")->check(non_negative())->capture_default_str();
  cmd->add_option("--temps", o->temps, "Temperatures to sweep, e.g. 0.7,0.85,1.0")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--clusters", o->clusters, "MAUVE: k-means clusters (0: min(samples, references) / 10, at least 2)")
      ->check(non_negative())->capture_default_str();
  cmd->add_option("--batch", o->batch, "Samples generated together in one batch")->check(positive())
      ->capture_default_str();
  add_sampler_options(cmd, o->sampler);
  cmd->add_flag("--json", o->json, "Print every figure, the samples, the command line, seed and paths as JSON");
  add_threads_option(cmd, o->threads);
  cmd->callback([o, cmd] {
    o->given = given_flags(cmd);
    run_eval_gen(*o);
  });
}

}  // namespace unmask::cli
