// unmask generate: text from a prompt (or holes filled in a pattern) with any sampler; --visual redraws the canvas as
// it denoises, --json prints ids, per-token commit steps and statistics. --chat wraps a message in the model's chat
// template, stops at the end of the assistant's turn and takes the sampler defaults of the model's authors.
#include <fmt/color.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/base/timer.h"
#include "unmask/io/gguf.h"
#include "unmask/model/model.h"
#include "unmask/sampling/batch.h"
#include "unmask/sampling/infill.h"
#include "unmask/sampling/sampler.h"
#include "unmask/tokenizer/chat.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask::cli {

namespace {

struct GenerateOptions {
  std::string model, prompt, infill, infill_tokens, sampler = "llada", remasking = "low_confidence", alg = "entropy";
  std::string cache = "none", remdm = "cap", chat, chat_template, batch, batch_tokens;
  std::vector<int32_t> prompt_tokens;
  std::vector<std::string> stop;
  SamplerConfig cfg;
  int threads = 0;
  bool json = false, visual = false, no_kv_cache = false, no_ddpm_cache = false, ignore_eos = false;
  std::function<bool(const std::string&)> given;  // whether the user passed this flag ("--temp")
};

// The model's tokenizer (a GGUF file's tokenizer.ggml.* keys, a Hugging Face folder's tokenizer.json), or null when
// a GGUF file carries none.
std::unique_ptr<Tokenizer> tokenizer_of(const std::string& path) {
  if (!std::filesystem::is_directory(path) && !gguf::Reader(path).has("tokenizer.ggml.model")) return nullptr;
  return load_tokenizer_file(path);
}

std::string text_of(const Tokenizer* tok, std::span<const int32_t> ids) {
  if (tok) return tok->decode(ids);
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

Tokenizer& need_tokenizer(Tokenizer* tok, const std::string& model, const char* flag) {
  check(tok != nullptr, "{}: {} carries no tokenizer; pass the prompt as token ids with --prompt-tokens 1,2,3 "
        "(or --infill-tokens)", flag, model);
  return *tok;
}

// --chat: the template the message goes into, and the ids that end the assistant's turn (the vocabulary's EOS and
// EOT, and the template's end-of-turn token: LLaDA's <|eot_id|>, ChatML's <|im_end|>).
struct Chat {
  const ChatTemplate* tmpl = nullptr;
  std::vector<int32_t> stop_ids;
};

Chat chat_of(const GenerateOptions& o, Tokenizer* tok) {
  if (o.chat.empty()) {
    check(o.chat_template.empty(), "--chat-template {}: give the message with --chat", o.chat_template);
    return {};
  }
  Tokenizer& t = need_tokenizer(tok, o.model, "--chat");
  Chat c{&resolve_chat_template(t, o.chat_template), {t.role(TokenRole::kEos), t.role(TokenRole::kEot)}};
  const std::vector<int32_t> end = t.encode(c.tmpl->after_content, false, true);
  if (!end.empty() && t.is_control(end[0])) c.stop_ids.push_back(end[0]);
  std::erase(c.stop_ids, -1);
  return c;
}

bool is_stop(const Chat& chat, int32_t id) {
  return std::find(chat.stop_ids.begin(), chat.stop_ids.end(), id) != chat.stop_ids.end();
}

// The sampler settings each instruct family's authors publish (LLaDA's generate.py/chat.py; Dream's README:
// diffusion_generate(steps = max_new_tokens, temperature 0.2, top_p 0.95, alg "entropy")); steps stay one per
// generated token, the default. --chat applies them to the flags the user did not give.
struct ChatDefaults {
  std::string_view arch, sampler, remasking, alg;
  double temperature, top_p;
  int block_length;  // 0: the whole generation
};
constexpr ChatDefaults kChatDefaults[] = {
    {"llada", "llada", "low_confidence", "entropy", 0.0, 1.0, 32},
    {"llada-moe", "llada", "low_confidence", "entropy", 0.0, 1.0, 32},
    {"dream", "dream", "low_confidence", "entropy", 0.2, 0.95, 0},
    {"llama", "ar", "low_confidence", "entropy", 0.0, 1.0, 0},
    {"qwen2", "ar", "low_confidence", "entropy", 0.0, 1.0, 0},
};

void apply_chat_defaults(GenerateOptions& o, std::string_view arch) {
  const auto* d = std::find_if(std::begin(kChatDefaults), std::end(kChatDefaults),
                               [&](const ChatDefaults& x) { return x.arch == arch; });
  if (o.chat.empty() || d == std::end(kChatDefaults)) return;
  if (!o.given("--sampler")) o.sampler = d->sampler;
  if (!o.given("--remasking")) o.remasking = d->remasking;
  if (!o.given("--alg")) o.alg = d->alg;
  if (!o.given("--temp")) o.cfg.temperature = d->temperature;
  if (!o.given("--top-p")) o.cfg.top_p = d->top_p;
  if (!o.given("--block-length")) o.cfg.block_length = d->block_length;
}

// The canvas: the prompt (or the --chat message in its template) followed by masks, or an infill pattern.
Canvas make_canvas(const GenerateOptions& o, const ModelConfig& mc, Tokenizer* tok, const Chat& chat) {
  const int given = int(!o.prompt.empty()) + int(!o.prompt_tokens.empty()) + int(!o.infill.empty()) +
                    int(!o.infill_tokens.empty()) + int(!o.chat.empty());
  check(given == 1, "give exactly one of -p/--prompt, --prompt-tokens, --chat, --infill, --infill-tokens");
  if (!o.infill_tokens.empty()) return infill_canvas(parse_infill_tokens(o.infill_tokens), mc.mask_token);
  if (!o.infill.empty()) {
    Tokenizer& t = need_tokenizer(tok, o.model, "--infill");
    auto enc = [&](std::string_view s) { return t.encode(s, false, true); };
    return infill_canvas(encode_pieces(parse_infill_pattern(o.infill), enc), mc.mask_token);
  }
  std::vector<int32_t> ids = o.prompt_tokens;
  if (!o.prompt.empty()) ids = need_tokenizer(tok, o.model, "-p").encode(o.prompt, true, true);
  if (chat.tmpl != nullptr) {
    // As Hugging Face's apply_chat_template: the template carries the BOS, nothing is added around it.
    const ChatMessage message{"user", o.chat};
    ids = tok->encode(apply_chat_template(*chat.tmpl, {&message, 1}, true), false, true);
  }
  return Canvas{ids, int(ids.size())};
}

// ANSI 256-colour grey by commit step: early steps bright, later ones darker.
std::string paint(const std::string& s, int step, int total) {
  const int grey = total <= 1 ? 255 : 255 - (step * 17) / std::max(total - 1, 1);
  return fmt::format("\x1b[38;5;{}m{}\x1b[0m", grey, s);
}

std::string piece(const Tokenizer* tok, int32_t id) { return tok ? tok->token_bytes(id) : fmt::format("{} ", id); }

void draw(const StepEvent& e, const Tokenizer* tok, const ModelConfig& mc, std::vector<int>& steps, int total) {
  steps.resize(e.canvas.size(), -1);
  for (int p : e.committed) steps[size_t(p)] = e.step;
  for (int p : e.remasked) steps[size_t(p)] = -1;
  std::string out = "\x1b[2J\x1b[H";
  for (size_t p = 0; p < e.canvas.size(); ++p) {
    const int32_t id = e.canvas[p];
    if (id == mc.mask_token) out += "\x1b[38;5;238m_\x1b[0m";
    else if (steps[p] < 0) out += fmt::format("\x1b[36m{}\x1b[0m", piece(tok, id));
    else out += paint(piece(tok, id), steps[p], total);
  }
  fmt::print(stderr, "{}\n\nstep {}  block {}  committed {}\n", out, e.step + 1, e.block, e.committed.size());
}

nlohmann::json stats_json(const GenerateStats& s) {
  return {{"forward_passes", s.forward_passes}, {"positions_run", s.positions_run}, {"logit_rows", s.logit_rows},
          {"steps", s.steps}, {"generated", s.generated}, {"tokens_per_forward", s.tokens_per_forward()},
          {"seconds_forward", s.seconds_forward}, {"seconds_sample", s.seconds_sample},
          {"seconds_total", s.seconds_total},
          {"tokens_per_second", s.seconds_total > 0 ? s.generated / s.seconds_total : 0.0}};
}

nlohmann::json result_json(const GenerateOptions& o, const GenerateResult& r, const std::vector<int32_t>& out,
                           const std::string& text) {
  std::vector<int32_t> steps(r.commit_step.begin() + r.prompt_length, r.commit_step.end());
  return {{"sampler", o.sampler},
          {"prompt", std::vector<int32_t>(r.canvas.begin(), r.canvas.begin() + r.prompt_length)},
          {"canvas", r.canvas}, {"ids", out}, {"commit_step", steps}, {"text", text},
          {"cancelled", r.cancelled}, {"stats", stats_json(r.stats)}};
}

// Stops AR decoding once the generated text holds a stop string.
bool hit_stop(const GenerateOptions& o, const Tokenizer* tok, const StepEvent& e) {
  if (o.stop.empty() || !tok) return false;
  const std::string text = tok->decode(e.canvas.subspan(size_t(e.prompt_length)));
  return std::any_of(o.stop.begin(), o.stop.end(), [&](const std::string& s) { return text.find(s) != std::string::npos; });
}

std::string cut_at_stop(std::string text, const std::vector<std::string>& stop) {
  for (const std::string& s : stop)
    if (size_t at = text.find(s); at != std::string::npos) text.resize(at);
  return text;
}

// The generated ids before the first stop id (a diffusion sampler fills the rest of the canvas after it, as LLaDA's
// reference pads with EOS).
std::vector<int32_t> cut_at_stop_id(std::vector<int32_t> ids, const Chat& chat) {
  ids.erase(std::find_if(ids.begin(), ids.end(), [&](int32_t id) { return is_stop(chat, id); }), ids.end());
  return ids;
}

// AR with --chat: the turn ends at the first stop id.
bool ended_turn(const Chat& chat, const StepEvent& e) {
  return std::any_of(e.committed.begin(), e.committed.end(), [&](int p) { return is_stop(chat, e.canvas[size_t(p)]); });
}

void finish_config(GenerateOptions& o) {
  o.cfg.kind = parse_sampler_kind(o.sampler);
  o.cfg.remasking = parse_remasking(o.remasking);
  o.cfg.alg = parse_dream_alg(o.alg);
  o.cfg.cache = parse_cache_mode(o.cache);
  o.cfg.remdm = parse_remdm_schedule(o.remdm);
  o.cfg.kv_cache = !o.no_kv_cache;
  o.cfg.ddpm_cache = !o.no_ddpm_cache;
  o.cfg.forbid_eos = o.ignore_eos;
  if (o.ignore_eos) o.cfg.stop_at_eos = false;
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

// Every prompt of the batch file with the same sampler settings and seed, run together by generate_batch: each
// request gives the tokens it gives alone with the same flags.
void run_batch(const GenerateOptions& o, Model& m, Tokenizer* tok) {
  check(o.chat.empty() && o.prompt.empty() && o.prompt_tokens.empty() && o.infill.empty() && o.infill_tokens.empty() &&
        !o.visual, "--batch: the prompts come from the file; -p, --prompt-tokens, --chat, --infill and --visual "
        "do not combine with it");
  const std::vector<std::vector<int32_t>> prompts = batch_prompts(o, tok);
  std::vector<Request> reqs(prompts.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].cfg = o.cfg;
    reqs[i].prompt = prompts[i];
    reqs[i].on_step = [&o, tok](const StepEvent& e) { return !(o.cfg.kind == SamplerKind::kAr && hit_stop(o, tok, e)); };
  }
  Timer t;
  const BatchResult b = generate_batch(m, reqs);
  const double secs = t.seconds();
  int generated = 0, failed = 0;
  for (size_t i = 0; i < b.outcomes.size(); ++i) {
    const BatchOutcome& bo = b.outcomes[i];
    if (!bo.ok()) {
      ++failed;
      if (o.json) fmt::print("{}\n", nlohmann::json{{"request", i}, {"error", bo.error}}.dump());
      else fmt::print(stderr, "request {}: {}\n", i + 1, bo.error);
      continue;
    }
    const std::vector<int32_t> out = bo.result.output(m.config().eos_token);
    const std::string text = cut_at_stop(text_of(tok, out), o.stop);
    generated += bo.result.stats.generated;
    if (o.json) {
      nlohmann::json j = result_json(o, bo.result, out, text);
      j["request"] = i;
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print("--- {} ---\n{}\n", i + 1, text);
    }
  }
  fmt::print(stderr, "{} batch: {} requests ({} failed), {} tokens, {} model calls ({} shared full passes), {:.2f} s "
             "({:.1f} tokens/s)\n", o.sampler, reqs.size(), failed, generated, b.model_calls, b.shared_passes, secs,
             secs > 0 ? generated / secs : 0.0);
  check(failed == 0, "--batch: {} of {} requests failed", failed, reqs.size());
}

void run_generate(GenerateOptions o) {
  set_num_threads(o.threads);
  Model m = Model::load(o.model);
  const ModelConfig& mc = m.config();
  apply_chat_defaults(o, mc.arch);
  finish_config(o);
  check(o.stop.empty() || o.cfg.kind == SamplerKind::kAr, "--stop: stop strings apply to --sampler ar");
  std::unique_ptr<Tokenizer> tok = tokenizer_of(o.model);
  if (!o.batch.empty() || !o.batch_tokens.empty()) return run_batch(o, m, tok.get());
  const Chat chat = chat_of(o, tok.get());
  Canvas canvas = make_canvas(o, mc, tok.get(), chat);
  ModelBackbone bb(m);
  std::vector<int> steps;
  const int total = std::max(o.cfg.steps > 0 ? o.cfg.steps : o.cfg.gen_length, 1);
  StepCallback cb = [&](const StepEvent& e) {
    if (o.visual) draw(e, tok.get(), mc, steps, total);
    return !(o.cfg.kind == SamplerKind::kAr && (hit_stop(o, tok.get(), e) || ended_turn(chat, e)));
  };
  const bool infill = !o.infill.empty() || !o.infill_tokens.empty();
  GenerateResult r = infill ? generate_canvas(bb, o.cfg, std::move(canvas), cb)
                            : generate(bb, o.cfg, canvas.tokens, cb);
  const std::vector<int32_t> out = infill ? r.canvas : cut_at_stop_id(r.output(mc.eos_token), chat);
  const std::string text = cut_at_stop(text_of(tok.get(), out), o.stop);
  if (o.json) return fmt::print("{}\n", result_json(o, r, out, text).dump());
  fmt::print("{}\n", text);
  const GenerateStats& s = r.stats;
  fmt::print(stderr, "{}: {} tokens, {} forward passes ({:.2f} tokens/forward), {:.2f} s ({:.1f} tokens/s; "
             "forward {:.2f} s, sampling {:.2f} s)\n", o.sampler, s.generated, s.forward_passes,
             s.tokens_per_forward(), s.seconds_total, s.seconds_total > 0 ? s.generated / s.seconds_total : 0.0,
             s.seconds_forward, s.seconds_sample);
}

void add_sampler_options(CLI::App* cmd, GenerateOptions& o) {
  SamplerConfig& c = o.cfg;
  cmd->add_option("--sampler", o.sampler, "ar, llada, dream, mdlm, bd3 or remdm")->capture_default_str();
  cmd->add_option("-n,--n-predict", c.gen_length, "Tokens to generate")->capture_default_str();
  cmd->add_option("--steps", c.steps, "Denoising steps (default: one per token; bd3: per block)");
  cmd->add_option("--block-length", c.block_length, "Semi-autoregressive block length (default: whole generation)");
  cmd->add_option("--threshold", c.threshold, "Parallel decoding: commit every position with confidence >= P");
  cmd->add_option("--factor", c.factor, "Parallel decoding with Fast-dLLM's factor rule");
  cmd->add_option("--cache", o.cache, "LLaDA's approximate caches (Fast-dLLM): none, prefix (K/V of the prompt and of finished blocks), dual (also of the blocks after the current one)")->capture_default_str();
  cmd->add_option("--temp,--temperature", c.temperature, "Temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", c.top_k, "Top-k (0: off)");
  cmd->add_option("--top-p", c.top_p, "Top-p / nucleus (1: off)");
  cmd->add_option("--min-p", c.min_p, "Min-p (0: off)");
  cmd->add_option("--repeat-penalty", c.repeat_penalty, "Repetition penalty (1: off; AR)");
  cmd->add_option("--repeat-last-n", c.repeat_last_n, "Tokens the repetition penalty looks back");
  cmd->add_option("-s,--seed", c.seed, "Random seed")->capture_default_str();
  cmd->add_option("--remasking", o.remasking, "LLaDA: low_confidence or random")->capture_default_str();
  cmd->add_option("--cfg-scale", c.cfg_scale, "Classifier-free guidance scale (LLaDA)");
  cmd->add_flag("--ignore-eos", o.ignore_eos, "Never sample EOS");
  cmd->add_flag("--eos-last", c.eos_last, "LLaDA: commit positions proposing EOS last");
  cmd->add_option("--alg", o.alg, "Dream: origin, maskgit_plus, topk_margin, entropy")->capture_default_str();
  cmd->add_option("--alg-temp", c.alg_temp, "Dream: draw positions from softmax(confidence / T)");
  cmd->add_option("--eps", c.eps, "Final time of the grid linspace(1, eps, steps + 1)");
  cmd->add_flag("--first-hitting", c.first_hitting, "bd3: one position per step (first hitting sampler)");
  cmd->add_option("--remdm", o.remdm, "ReMDM schedule: cap, rescale, conf")->capture_default_str();
  cmd->add_option("--eta", c.eta, "ReMDM eta")->capture_default_str();
  cmd->add_flag("--no-kv-cache", o.no_kv_cache, "AR and bd3: recompute the whole sequence every step");
  cmd->add_flag("--no-ddpm-cache", o.no_ddpm_cache, "MDLM: run the model even when nothing changed");
  cmd->add_option("--stop", o.stop, "AR: stop once the text holds this string (repeatable)");
}

}  // namespace

void add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate text with a diffusion or autoregressive sampler");
  auto o = std::make_shared<GenerateOptions>();
  cmd->add_option("-m,--model", o->model, "GGUF model file or Hugging Face folder")->required();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text (needs a tokenizer in the model file)");
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "Prompt as token ids, comma-separated")->delimiter(',');
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
  add_sampler_options(cmd, *o);
  cmd->add_flag("--json", o->json, "Print ids, per-token commit steps and statistics as JSON");
  cmd->add_flag("--visual", o->visual, "Redraw the canvas on stderr as it denoises (darker = committed later)");
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([o, cmd] {
    o->given = [cmd](const std::string& flag) { return cmd->get_option(flag)->count() > 0; };
    run_generate(*o);
  });
}

}  // namespace unmask::cli
