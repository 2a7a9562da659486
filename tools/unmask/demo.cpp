// unmask demo: one prompt through a diffusion model and its autoregressive twin. On a terminal the diffusion canvas
// denoises live (each token coloured by the step that committed it), then the AR twin's text streams in; each ends
// with one line of figures. Piped, it prints the same as plain labelled text. The default models (kjv-mdlm.gguf and
// kjv-ar.gguf) are found in $UNMASK_MODELS, in an install's share/unmask/models, or in the source tree's models/.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "canvas_view.h"
#include "cli_util.h"
#include "commands.h"
#include "live_output.h"
#include "model_file.h"
#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/base/timer.h"
#include "unmask/io/gguf.h"
#include "unmask/model/model.h"
#include "unmask/sampling/text.h"

namespace unmask::cli {

namespace {

namespace fs = std::filesystem;


struct DemoOptions {
  std::string prompt = "And God said", prompt_file, diffusion_model, ar_model, sampler;
  int n = 64, steps = 0, block_length = 0, threads = 0, delay_ms = 30;
  double threshold = 0, temperature = 0.8;
  uint64_t seed = 42;
  std::function<bool(const std::string&)> given;
};

// The flag's path when given (it must exist), else the default file found (model_file.h).
std::string model_path(const std::string& given, const char* flag, const char* file) {
  if (!given.empty()) {
    check(fs::is_regular_file(given) || fs::is_directory(given), "{} {}: no such model file", flag, given);
    return given;
  }
  return default_model_path(file, flag);
}

// A model and its tokenizer; the demo reads and prints text, so a model without one is refused.
struct Loaded {
  std::string path;
  Model model;
  std::unique_ptr<Tokenizer> tok;
};

Loaded load(const std::string& path, const char* flag) {
  check(fs::is_directory(path) || has_vocabulary(gguf::Reader(path)),
        "{} {}: the model carries no tokenizer; the demo needs one to read the prompt and print text", flag, path);
  Model m = Model::load(path);
  std::unique_ptr<Tokenizer> tok = load_tokenizer_file(path);
  return {path, std::move(m), std::move(tok)};
}

SamplerConfig sampler_config(const DemoOptions& o, SamplerKind kind) {
  SamplerConfig c;
  c.kind = kind;
  c.gen_length = o.n;
  c.temperature = o.temperature;
  c.seed = o.seed;
  if (kind == SamplerKind::kAr) return c;
  c.steps = o.given("--steps") ? o.steps : -1;
  c.block_length = o.block_length;
  c.threshold = o.threshold;
  return c;
}

// The diffusion sampler's settings (--sampler or the model's), refusing flags it does not read and values out of
// range.
SamplerConfig diffusion_config(const DemoOptions& o, const ModelConfig& mc) {
  check(mc.mask != MaskKind::kCausal, "--diffusion-model: this {} model is causal; the demo's first model must be a "
        "diffusion model (its twin goes in --ar-model)", mc.arch);
  const SamplerKind k = o.given("--sampler") ? parse_sampler_kind(o.sampler) : default_sampler(mc);
  check_sampler_fits(k, mc, false);
  const SamplerConfig c = sampler_config(o, k);
  std::vector<std::string> given;
  for (const char* f : {"--steps", "--block-length", "--threshold"})
    if (o.given(f)) given.emplace_back(f);
  check_given_options(c, given);
  return c;
}

// A model, its sampler settings and its prompt.
struct Job {
  Loaded& m;
  SamplerConfig cfg;
  Canvas canvas;
};

// One model's output: on a terminal the live view (diffusion) or the streamed text (AR); piped, plain text. Returns
// the statistics with the time spent drawing and pausing taken out of seconds_total.
GenerateStats run_model(const Job& run, const DemoOptions& o, bool live) {
  const ModelConfig& mc = run.m.model.config();
  const bool ar = run.cfg.kind == SamplerKind::kAr;
  const bool canvas_view = live && !ar && LiveCanvas::enabled();
  LiveCanvas view(run.m.tok.get(), mc.mask_token, run.cfg.steps > 0 ? run.cfg.steps : o.n);
  ArStream stream(stdout, run.m.tok.get(), {}, {mc.eos_token});
  double outside = 0;  // seconds in the callback: drawing, streaming, the pause between frames
  StepCallback cb = [&](const StepEvent& e) {
    Timer t;
    if (canvas_view) view.update(e);
    if (ar) stream.update(e);
    if (live && o.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.delay_ms));
    outside += t.seconds();
    return true;
  };
  if (ar || !canvas_view) fmt::print("{}", o.prompt), std::fflush(stdout);
  ModelBackbone bb(run.m.model);
  GenerateResult r = generate(bb, run.cfg, run.canvas.tokens, cb);
  if (ar) stream.finish();
  else if (!canvas_view) fmt::print("{}\n", decode_text(run.m.tok.get(), r.output(mc.eos_token)));
  r.stats.seconds_total = std::max(r.stats.seconds_total - outside, 0.0);
  return r.stats;
}

// The header of a section: bold on a terminal, plain when piped.
void header(const std::string& s, bool live) {
  if (live) fmt::print("\x1b[1m{}\x1b[0m\n", s);
  else fmt::print("{}\n", s);
  std::fflush(stdout);
}

void run_demo(const DemoOptions& o) {
  set_num_threads(o.threads);
  check(o.n >= 1, "-n {}: expected at least 1 token to generate", o.n);
  DemoOptions opt = o;
  if (o.given("--file")) opt.prompt = read_prompt_file(o.prompt_file);
  Loaded dm = load(model_path(o.diffusion_model, "--diffusion-model", kDiffusionFile), "--diffusion-model");
  Loaded am = load(model_path(o.ar_model, "--ar-model", kArFile), "--ar-model");
  const Job diffusion{dm, diffusion_config(opt, dm.model.config()), text_canvas(*dm.tok, opt.prompt)};
  check_sampler_fits(SamplerKind::kAr, am.model.config(), false);
  const Job ar{am, sampler_config(opt, SamplerKind::kAr), text_canvas(*am.tok, opt.prompt)};
  for (const Job* r : {&diffusion, &ar}) {
    check_prompt_fits(r->canvas, r->m.model.config());
    validate(r->cfg, r->m.model.config(), r->canvas.prompt_length);
  }
  const bool live = isatty(STDOUT_FILENO) != 0;
  header(fmt::format("prompt: {}", opt.prompt), live);
  header(fmt::format("--- diffusion: {} ({} sampler) ---", dm.path, sampler_kind_name(diffusion.cfg.kind)), live);
  const GenerateStats ds = run_model(diffusion, opt, live);
  fmt::print("{}\n", figures_line("diffusion figures", ds));
  header(fmt::format("--- autoregressive: {} (ar) ---", am.path), live);
  const GenerateStats as = run_model(ar, opt, live);
  fmt::print("{}\n", figures_line("autoregressive figures", as));
}

}  // namespace

void add_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Watch a diffusion model unmask text beside its autoregressive twin");
  cmd->footer("Example:\n  unmask demo -p \"In the beginning\" --steps 32 -s 7\n"
              "  unmask demo --diffusion-model runs/mdlm/checkpoint.gguf --ar-model runs/ar/checkpoint.gguf -n 128\n"
              "Default models: kjv-mdlm.gguf and kjv-ar.gguf, looked for in $UNMASK_MODELS, then "
              "<bin>/../share/unmask/models, then the source tree's models/.\nPiped (stdout not a terminal), the "
              "demo prints plain labelled text.");
  auto o = std::make_shared<DemoOptions>();
  cmd->add_option("-p,--prompt", o->prompt, "Prompt text")->capture_default_str();
  cmd->add_option("-f,--file", o->prompt_file, "Read the prompt from this file (less one final newline)")
      ->excludes("--prompt");
  cmd->add_option("-m,--diffusion-model", o->diffusion_model, "The diffusion model (GGUF with a tokenizer, or a "
                  "Hugging Face folder; default: kjv-mdlm.gguf)");
  cmd->add_option("--ar-model", o->ar_model, "The autoregressive twin (default: kjv-ar.gguf)");
  cmd->add_option("--sampler", o->sampler, "Diffusion sampler: llada, dream, mdlm, bd3, remdm (default: the model's)");
  cmd->add_option("-n,--n-predict", o->n, "Tokens each model generates")->capture_default_str();
  cmd->add_option("--steps", o->steps, "Denoising steps (default: one per token)");
  cmd->add_option("--block-length", o->block_length, "Semi-autoregressive block length (llada; default: the whole "
                  "generation)");
  cmd->add_option("--threshold", o->threshold, "Parallel decoding: commit every position with confidence >= P, "
                  "P in (0, 1]");
  cmd->add_option("--temp,--temperature", o->temperature, "Temperature of both models (0: greedy)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  add_seed_option(cmd, o->seed, "Random seed of both models");
  cmd->add_option("--delay", o->delay_ms, "Milliseconds between frames on a terminal, so that the denoising can be "
                  "watched (not counted in the figures)")->capture_default_str()->check(CLI::NonNegativeNumber);
  add_threads_option(cmd, o->threads);
  cmd->callback([o, cmd] {
    o->given = [cmd](const std::string& flag) { return cmd->get_option(flag)->count() > 0; };
    run_demo(*o);
  });
}

}  // namespace unmask::cli
