// unmask generate: text from a prompt (or holes filled in a pattern) with any sampler, by default the one the model's
// family decodes with. AR text streams to stdout as it is produced, diffusion shows its progress on a terminal,
// --visual redraws the canvas coloured by commit step, --json prints ids, per-token commit steps and statistics.
// --chat wraps a message in the model's chat template, stops at the end of the assistant's turn and takes the sampler
// defaults of the model's authors. The text-level work (defaults, chat, stops, canvases, UTF-8) is the library's
// (unmask/sampling/text.h); this file reads flags and prints.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "canvas_view.h"
#include "cli_util.h"
#include "commands.h"
#include "live_output.h"
#include "model_file.h"
#include "sampler_options.h"
#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/base/timer.h"
#include "unmask/io/gguf.h"
#include "unmask/model/model.h"
#include "unmask/sampling/batch.h"
#include "unmask/sampling/sampler.h"
#include "unmask/sampling/text.h"
#include "unmask/tokenizer/chat.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask::cli {

namespace {

struct GenerateOptions {
  std::string model, draft_model, prompt, prompt_file, infill, infill_tokens, chat, chat_template, batch, batch_tokens;
  std::vector<int32_t> prompt_tokens;
  std::vector<std::string> stop;
  SamplerOptions sampler;
  SamplerConfig cfg;  // the sampler's flags made into the model's configuration (finish_config)
  int threads = 0;
  bool json = false, visual = false;
  std::function<bool(const std::string&)> given;  // whether the user passed this flag ("--temp")
};

Tokenizer& need_tokenizer(Tokenizer* tok, const std::string& model, const char* flag) {
  check(tok != nullptr, "{}: {} carries no tokenizer; pass the prompt as token ids with --prompt-tokens 1,2,3 "
        "(or --infill-tokens)", flag, model);
  return *tok;
}

bool is_infill(const GenerateOptions& o) { return !o.infill.empty() || !o.infill_tokens.empty(); }

// Samplers that write left to right, appending to the prompt: their text streams as it comes.
bool appends(SamplerKind k) { return k == SamplerKind::kAr || k == SamplerKind::kSpec; }

void finish_config(GenerateOptions& o, const ModelConfig& mc) {
  o.cfg = sampler_config(o.sampler, mc, is_infill(o), o.given);
  // --chat: the defaults of the model's authors for the flags the user did not give and the sampler reads.
  if (!o.chat.empty()) apply_chat_defaults(o.cfg, mc.arch, [&](std::string_view f) { return o.given(std::string(f)); });
}

Chat chat_of(const GenerateOptions& o, Tokenizer* tok) {
  if (o.chat.empty()) {
    check(o.chat_template.empty(), "--chat-template {}: give the message with --chat", o.chat_template);
    return {};
  }
  return make_chat(need_tokenizer(tok, o.model, "--chat"), o.chat_template);
}

// The canvas: the prompt (-p, -f, --prompt-tokens, or the --chat message in its template) followed by masks, or an
// infill pattern.
Canvas make_canvas(const GenerateOptions& o, const ModelConfig& mc, Tokenizer* tok, const Chat& chat) {
  const int given = int(o.given("--prompt")) + int(o.given("--file")) + int(!o.prompt_tokens.empty()) +
                    int(!o.infill.empty()) + int(!o.infill_tokens.empty()) + int(!o.chat.empty());
  check(given == 1, "give exactly one of -p/--prompt, -f/--file, --prompt-tokens, --chat, --infill, --infill-tokens");
  if (!o.infill_tokens.empty()) return infill_ids_canvas(o.infill_tokens, mc.mask_token);
  if (!o.infill.empty()) return infill_text_canvas(need_tokenizer(tok, o.model, "--infill"), o.infill, mc.mask_token);
  if (chat.tmpl != nullptr) return chat_canvas(*tok, chat, o.chat);
  if (o.given("--file")) return text_canvas(need_tokenizer(tok, o.model, "-f"), read_prompt_file(o.prompt_file));
  if (o.given("--prompt")) return text_canvas(need_tokenizer(tok, o.model, "-p"), o.prompt);
  return ids_canvas(o.prompt_tokens);
}

// The positions a run fills: the holes of an infill canvas, or the generation after a prompt.
int positions_to_fill(const SamplerConfig& c, const ModelConfig& mc, const Canvas& canvas) {
  const bool prompt_only = canvas.prompt_length == int(canvas.tokens.size());
  return prompt_only ? c.gen_length : int(std::count(canvas.tokens.begin(), canvas.tokens.end(), mc.mask_token));
}

// The steps the rainbow of --visual spans: the sampler's step count (bd3: per block), or one per position.
int expected_steps(const SamplerConfig& c, const ModelConfig& mc, const Canvas& canvas) {
  const int masks = positions_to_fill(c, mc, canvas);
  if (appends(c.kind) || c.steps <= 0) return masks;
  const int block = c.kind == SamplerKind::kBd3 ? std::max(mc.block_size, 1) : masks;
  return c.steps * std::max((masks + block - 1) / block, 1);
}

// JSON that is always valid: the text fields are valid UTF-8 already; anything else is replaced, never thrown.
std::string json_line(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json stats_json(const GenerateStats& s) {
  return {{"forward_passes", s.forward_passes}, {"positions_run", s.positions_run}, {"logit_rows", s.logit_rows},
          {"steps", s.steps}, {"generated", s.generated}, {"tokens_per_forward", s.tokens_per_forward()},
          {"drafted", s.drafted}, {"accepted", s.accepted}, {"draft_passes", s.draft_passes},
          {"seconds_forward", s.seconds_forward}, {"seconds_sample", s.seconds_sample},
          {"seconds_total", s.seconds_total},
          {"tokens_per_second", s.seconds_total > 0 ? s.generated / s.seconds_total : 0.0}};
}

// "text" is valid UTF-8 (U+FFFD where the ids' bytes are not); "ids" are the exact tokens.
nlohmann::json result_json(const SamplerConfig& c, const GenerateResult& r, const std::vector<int32_t>& out,
                           const std::string& text) {
  std::vector<int32_t> steps(r.commit_step.begin() + r.prompt_length, r.commit_step.end());
  return {{"sampler", sampler_kind_name(c.kind)},
          {"prompt", std::vector<int32_t>(r.canvas.begin(), r.canvas.begin() + r.prompt_length)},
          {"canvas", r.canvas}, {"ids", out}, {"commit_step", steps}, {"text", text},
          {"cancelled", r.cancelled}, {"stats", stats_json(r.stats)}};
}

// AR with stop strings, for a request that is not streamed (--batch): stop once the generated text holds one.
bool hit_stop(const GenerateOptions& o, const Tokenizer* tok, const StepEvent& e) {
  return appends(o.cfg.kind) && tok && !o.stop.empty() &&
         holds_stop(tok->decode(e.canvas.subspan(size_t(e.prompt_length))), o.stop);
}

// --batch / --batch-tokens: one prompt per non-empty line of the file (text, or ids as 1,2,3).
std::vector<std::vector<int32_t>> batch_prompts(const GenerateOptions& o, Tokenizer* tok) {
  const bool ids = !o.batch_tokens.empty();
  const std::string& path = ids ? o.batch_tokens : o.batch;
  std::ifstream in(path);
  check(in.good(), "{}: cannot open the batch file", path);
  std::vector<std::vector<int32_t>> prompts;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    if (!ids) {
      prompts.push_back(need_tokenizer(tok, o.model, "--batch").encode(line, true, true));
      continue;
    }
    std::vector<int32_t> p;
    std::istringstream items(line);
    for (std::string item; std::getline(items, item, ',');) {
      int32_t id = -1;
      const char* end = item.data() + item.size();
      const auto [at, ec] = std::from_chars(item.data(), end, id);
      check(ec == std::errc() && at == end && id >= 0, "{}:{}: '{}' is not a token id (a line is ids, 1,2,3)", path,
            n, item);
      p.push_back(id);
    }
    prompts.push_back(std::move(p));
  }
  check(!prompts.empty(), "{}: no prompt in the batch file (one per line)", path);
  return prompts;
}

void print_outcome(const GenerateOptions& o, size_t i, const BatchOutcome& bo, const ModelConfig& mc,
                   const Tokenizer* tok) {
  if (!bo.ok()) {
    if (o.json) return fmt::print("{}\n", json_line({{"request", i}, {"error", bo.error}}));
    return fmt::print(stderr, "request {}: {}\n", i + 1, bo.error);
  }
  const std::vector<int32_t> out = bo.result.output(mc.eos_token);
  const std::string text = cut_at_stop(decode_text(tok, out), o.stop);
  if (!o.json) return fmt::print("--- {} ---\n{}\n", i + 1, text);
  nlohmann::json j = result_json(o.cfg, bo.result, out, text);
  j["request"] = i;
  fmt::print("{}\n", json_line(j));
}

// Every prompt of the batch file with the same sampler settings and seed, run together by generate_batch: each
// request gives the tokens it gives alone with the same flags.
void run_batch(const GenerateOptions& o, Model& m, Tokenizer* tok) {
  check(o.chat.empty() && !o.given("--prompt") && !o.given("--file") && o.prompt_tokens.empty() && !is_infill(o) &&
        !o.visual, "--batch: the prompts come from the file; -p, -f, --prompt-tokens, --chat, --infill and --visual "
        "do not combine with it");
  const std::vector<std::vector<int32_t>> prompts = batch_prompts(o, tok);
  std::vector<Request> reqs(prompts.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].cfg = o.cfg;
    reqs[i].prompt = prompts[i];
    reqs[i].on_step = [&o, tok](const StepEvent& e) { return !hit_stop(o, tok, e); };
  }
  Timer t;
  const BatchResult b = generate_batch(m, reqs);
  const double secs = t.seconds();
  int generated = 0, failed = 0;
  for (size_t i = 0; i < b.outcomes.size(); ++i) {
    print_outcome(o, i, b.outcomes[i], m.config(), tok);
    failed += !b.outcomes[i].ok();
    generated += b.outcomes[i].result.stats.generated;
  }
  fmt::print(stderr, "{} batch: {} requests ({} failed), {} tokens, {} model calls ({} shared full passes), {:.2f} s "
             "({:.1f} tokens/s)\n", sampler_kind_name(o.cfg.kind), reqs.size(), failed, generated, b.model_calls,
             b.shared_passes, secs, secs > 0 ? generated / secs : 0.0);
  check(failed == 0, "--batch: {} of {} requests failed", failed, reqs.size());
}

// --draft-model: the drafter, which must share the target's tokenizer token for token.
Model load_drafter(const GenerateOptions& o, const Tokenizer* tok) {
  Model dm = Model::load(o.draft_model);
  std::unique_ptr<Tokenizer> dtok = model_tokenizer(o.draft_model);
  check(!tok == !dtok, "--draft-model: {} carries a tokenizer and {} none; the drafter must share the target's "
        "tokenizer", tok ? o.model : o.draft_model, tok ? o.draft_model : o.model);
  if (tok) {
    check(tok->n_vocab() == dtok->n_vocab(), "--draft-model: {} has {} tokens, the target {} has {}; the drafter "
          "must share the target's tokenizer", o.draft_model, dtok->n_vocab(), o.model, tok->n_vocab());
    for (int32_t id = 0; id < tok->n_vocab(); ++id)
      check(tok->token_text(id) == dtok->token_text(id), "--draft-model: token {} is '{}' in {} but '{}' in the target "
            "{}; the drafter must share the target's tokenizer", id, dtok->token_text(id), o.draft_model,
            tok->token_text(id), o.model);
  }
  return dm;
}

// One request: AR streams its text (unless --json or --visual), diffusion shows its progress or the live canvas.
void run_one(const GenerateOptions& o, Model& m, const Tokenizer* tok, const Chat& chat, Canvas canvas) {
  const ModelConfig& mc = m.config();
  const bool ar = appends(o.cfg.kind), stream = ar && !o.json && !o.visual;
  std::vector<int32_t> skip = chat.stop_ids;
  skip.push_back(mc.eos_token);
  ArStream text(stdout, tok, o.stop, skip);
  DenoiseProgress progress(positions_to_fill(o.cfg, mc, canvas), !ar && !o.visual);
  LiveCanvas view(tok, mc.mask_token, expected_steps(o.cfg, mc, canvas));
  StepCallback cb = [&](const StepEvent& e) {
    if (o.visual) view.update(e);
    if (stream) text.update(e);
    progress.update(e);
    return !(ar && (hit_stop(o, tok, e) || ended_turn(chat, e)));
  };
  ModelBackbone bb(m);
  std::optional<Model> dm;
  std::optional<ModelBackbone> dbb;
  SamplerConfig cfg = o.cfg;
  if (!o.draft_model.empty()) {
    dm.emplace(load_drafter(o, tok));
    cfg.drafter = &dbb.emplace(*dm);
  }
  const bool infill = is_infill(o);
  const GenerateResult r = infill ? generate_canvas(bb, cfg, std::move(canvas), cb)
                                  : generate(bb, cfg, canvas.tokens, cb);
  progress.finish();
  const std::vector<int32_t> out = infill ? r.canvas : cut_at_stop_id(r.output(mc.eos_token), chat);
  const std::string txt = cut_at_stop(decode_text(tok, out), o.stop);
  if (o.json) return fmt::print("{}\n", json_line(result_json(o.cfg, r, out, txt)));
  if (stream) text.finish();
  else fmt::print("{}\n", txt);
  fmt::print(stderr, "{}\n", figures_line(sampler_kind_name(o.cfg.kind), r.stats));
}

void run_generate(GenerateOptions o) {
  set_num_threads(o.threads);
  Model m = Model::load(o.model);
  const ModelConfig& mc = m.config();
  finish_config(o, mc);
  std::unique_ptr<Tokenizer> tok = model_tokenizer(o.model);
  if (!o.batch.empty() || !o.batch_tokens.empty()) {
    check(o.draft_model.empty(), "--draft-model: one request at a time (not with --batch)");
    return run_batch(o, m, tok.get());
  }
  const Chat chat = chat_of(o, tok.get());
  Canvas canvas = make_canvas(o, mc, tok.get(), chat);
  check_prompt_fits(canvas, mc);
  run_one(o, m, tok.get(), chat, std::move(canvas));
}

}  // namespace

void add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate text with a diffusion or autoregressive sampler");
  auto o = std::make_shared<GenerateOptions>();
  cmd->add_option("-m,--model", o->model, "GGUF model file or Hugging Face folder")->required();
  cmd->add_option("--draft-model", o->draft_model, "spec: a separate drafter with the same tokenizer (a masked "
                  "diffusion model or a joint model) drafts --draft-length tokens a pass for this causal model to "
                  "verify; the output stays this model's");
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text (needs a tokenizer in the model file; \"\" is an empty "
                  "prompt: the BOS alone)");
  cmd->add_option("-f,--file", o->prompt_file, "Read the prompt text from this file (less one final newline)");
  add_tokens_option(cmd, "--prompt-tokens", o->prompt_tokens, "Prompt as token ids");
  cmd->add_option("--infill", o->infill, "Fill the holes of a pattern: \"The [MASK:12] of the world\"");
  cmd->add_option("--infill-tokens", o->infill_tokens, "Infill pattern as ids: 1,2,M12,3 (M<n>: n masks)");
  cmd->add_option("--chat", o->chat, "A user message, put in the model's chat template with the assistant's turn "
                  "opened; stops at the end of the turn; unless given, sampler flags take the defaults of the model's "
                  "authors (LLaDA: llada, low_confidence, --temp 0, --block-length 32; Dream: dream, entropy, "
                  "--temp 0.2, --top-p 0.95; LLaMA/Qwen2: ar, --temp 0)");
  cmd->add_option("--chat-template", o->chat_template, "With --chat: the template by name instead of the model's: " +
                  chat_template_names());
  cmd->add_option("--batch", o->batch, "Generate for every line of this file (one prompt per line) in one batch, "
                  "each with the same flags and seed (the tokens each gives alone)");
  cmd->add_option("--batch-tokens", o->batch_tokens, "As --batch with prompts as token ids, 1,2,3 per line")
      ->excludes("--batch");
  add_sampler_options(cmd, o->sampler);
  cmd->add_option("--stop", o->stop, "AR: stop once the text holds this string (repeatable)");
  cmd->add_flag("--json", o->json, "Print ids, per-token commit steps and statistics as JSON");
  cmd->add_flag("--visual", o->visual, "Redraw the canvas in place on stderr as it denoises, each token coloured by "
                "the step that committed it (red first, through the rainbow to rose last); only on a terminal");
  add_threads_option(cmd, o->threads);
  cmd->callback([o, cmd] {
    o->given = given_flags(cmd);
    run_generate(*o);
  });
}

}  // namespace unmask::cli
