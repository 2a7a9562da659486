// unmask train: ar, mdlm, bd3 or sft (fine-tuning, usually --init from a model) on one backbone, with a progress
// line, a CSV and SVG curve, atomic checkpoints and exact resume. SIGINT or SIGTERM finishes the step under way,
// checkpoints it and exits with 128 + the signal (130 for Ctrl-C); a second one quits at once.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <memory>

#include "cli_util.h"
#include "commands.h"
#include "progress.h"
#include "train_options.h"
#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/train/comm.h"
#include "unmask/train/trainer.h"

namespace unmask::cli {

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
  constexpr char kMsg[] = "\nunmask: finishing this step, then writing a checkpoint (again to quit at once)\n";
  [[maybe_unused]] const ssize_t n = write(2, kMsg, sizeof kMsg - 1);
}

}  // namespace

void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int stop_signal() { return int(g_stop_signal); }

namespace {

struct TrainOptions {
  TrainConfig c;
  std::string resume;
  int threads = 0;
};

std::string clock(double s) { return fmt::format("{}:{:02d}", int(s) / 60, int(s) % 60); }

void report(const StepReport& r) {
  if (Comm::world().rank() != 0) return;
  std::string extra = fmt::format("loss {:.4f}  lr {:.2e}  {:.0f} tok/s  {} elapsed, eta {}", r.loss, r.lr,
                                  r.tokens_per_s, clock(r.elapsed_s), clock(r.eta_s));
  draw_progress("train", r.step, r.steps, "steps", extra);
  if (r.val_loss || r.checkpointed) {
    if (r.step != r.steps && isatty(2)) std::fputc('\n', stderr);
    fmt::print("step {:>6}  loss {:.4f}{}{}\n", r.step, r.loss,
               r.val_loss ? fmt::format("  val {:.4f}", *r.val_loss) : "", r.checkpointed ? "  (checkpoint)" : "");
    std::fflush(stdout);
  }
}

void run_train(const TrainOptions& o) {
  catch_stop_signals();  // from the start: a signal while loading stops the run after its first step
  set_num_threads(o.threads);
  Trainer t = o.resume.empty() ? Trainer::start(o.c) : Trainer::resume(o.resume, o.c.steps);
  const bool talk = Comm::world().rank() == 0;
  if (talk)
    fmt::print("{} {}: {}\n", o.resume.empty() ? "training" : "resuming at step " + std::to_string(t.step()) + ",",
             t.config().out_dir, t.model_summary());
  std::fflush(stdout);
  if (!t.run(report, [] { return stop_signal() != 0; })) {
    const std::string& dir = t.config().out_dir;
    if (talk)
      fmt::print(stderr, "interrupted after step {} of {}: checkpoint in {}/checkpoint.gguf; continue with `unmask "
                 "train --resume {}`\n", t.step(), t.config().steps, dir, dir);
    throw ExitStatus{128 + stop_signal()};
  }
  if (talk)
    fmt::print("done: {} steps; curve in {}/log.csv and loss.svg, model and optimizer in {}/checkpoint.gguf\n",
             t.config().steps, t.config().out_dir, t.config().out_dir);
}

}  // namespace

void add_train_options(CLI::App* cmd, TrainConfig& c) {
  cmd->add_option("--schedule", c.schedule, "Noise schedule for mdlm/bd3: linear, cosine, loglinear")
      ->capture_default_str();
  cmd->add_option("--config", c.preset, "Model size: tiny, nano, small, medium")->capture_default_str();
  cmd->add_option("--d-model", c.d_model, "Override the width")->check(positive());
  cmd->add_option("--layers", c.layers, "Override the number of layers")->check(positive());
  cmd->add_option("--heads", c.heads, "Override the number of heads")->check(positive());
  cmd->add_option("--ffn", c.ffn, "Override the feed-forward width")->check(positive());
  cmd->add_option("--block-size", c.block, "Block size for bd3 and joint (the draft length of self-speculation)")
      ->check(positive());
  cmd->add_option("--diffusion-weight", c.diffusion_weight, "joint: the block-diffusion loss's weight beside the AR "
                  "loss")->capture_default_str()->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--steps", c.steps, "Optimizer steps in all (default 2000; with --resume, the run's own)")
      ->check(positive());
  cmd->add_option("--batch", c.batch, "Sequences per micro-batch")->capture_default_str()->check(positive());
  cmd->add_option("--seq-len", c.seq_len, "Tokens per sequence")->capture_default_str()
      ->check(in_range(int64_t(2), int64_t(1) << 20));
  cmd->add_option("--accum", c.accum, "Micro-batches per step")->capture_default_str()->check(positive());
  cmd->add_option("--lr", c.lr, "Peak learning rate")->capture_default_str()->check(positive());
  cmd->add_option("--min-lr", c.min_lr, "Learning rate at the end of the cosine decay")->capture_default_str()
      ->check(non_negative());
  cmd->add_option("--warmup", c.warmup, "Warmup steps")->capture_default_str()->check(non_negative());
  cmd->add_option("--weight-decay", c.weight_decay, "AdamW weight decay")->capture_default_str()
      ->check(non_negative());
  cmd->add_option("--beta2", c.beta2, "AdamW beta2")->capture_default_str()->check(in_range(0.0, 1.0));
  cmd->add_option("--grad-clip", c.grad_clip, "Clip the gradient norm (0: off)")->capture_default_str()
      ->check(non_negative());
  cmd->add_option("--eval-every", c.eval_every, "Steps between validations")->capture_default_str()->check(positive());
  cmd->add_option("--eval-batches", c.eval_batches, "Batches per validation")->capture_default_str()
      ->check(positive());
  cmd->add_option("--checkpoint-every", c.ckpt_every, "Steps between checkpoints (and at the end, and on SIGINT or "
                  "SIGTERM)")->capture_default_str()->check(positive());
  cmd->add_flag("--bf16", c.bf16, "Mixed precision: bf16 GEMMs (weights copied from the f32 master after each "
                                  "step, activations rounded), f32 accumulation, gradients and AdamW");
  add_seed_option(cmd, c.seed, "Seed of the initialisation, data windows and masks (kept in the checkpoint)");
}

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a model: next-token (ar), masked diffusion (mdlm), block diffusion "
                                          "(bd3) or fine-tuning (sft); Ctrl-C writes a checkpoint, --resume goes on");
  auto o = std::make_shared<TrainOptions>();
  TrainConfig& c = o->c;
  c.steps = 0;  // 0: the config's (2000 for a new run, the checkpoint's on resume)
  cmd->add_option("--objective", c.objective, "ar, mdlm, bd3, joint (AR + block diffusion on one checkpoint: decodes "
                  "as ar, bd3 and spec), or sft (prompt/response examples from "
                                             "`data prepare --format jsonl`)")->capture_default_str();
  cmd->add_option("--init", c.init, "Start from this model's weights (GGUF; its shape and attention) instead of a "
                                    "random model");
  cmd->add_option("--arch", c.arch, "mdlm/sft: llada (row i predicts position i) or dream (row i predicts position "
                                   "i + 1, as AR rows do: learns from the clean neighbour first)");
  cmd->add_option("--data", c.data_dir, "Directory from `unmask data prepare`");
  add_train_options(cmd, c);
  cmd->add_option("-o,--out", c.out_dir, "Run directory (refused when it already holds a checkpoint: --resume it)");
  cmd->add_option("--resume", o->resume, "Continue the run in this directory from its checkpoint");
  add_threads_option(cmd, o->threads);
  cmd->callback([o, cmd] {
    if (!o->resume.empty()) {  // the run's configuration is the checkpoint's: only its length may change
      std::string fixed;
      for (const CLI::Option* opt : cmd->get_options())
        if (opt->count() > 0 && opt->get_name() != "--resume" && opt->get_name() != "--steps" &&
            opt->get_name() != "--threads")
          fixed += (fixed.empty() ? "" : ", ") + opt->get_name();
      check(fixed.empty(), "train --resume: {} cannot change when resuming; the run keeps its checkpoint's "
            "configuration (only --steps and --threads may be given)", fixed);
    } else {
      check(!o->c.data_dir.empty() && !o->c.out_dir.empty(), "train: --data and --out are required (or --resume)");
      for (const char* shape : {"--config", "--d-model", "--layers", "--heads", "--ffn"})
        check(o->c.init.empty() || cmd->get_option(shape)->count() == 0, "train: {} cannot be given with --init (the "
              "model's shape is the file's)", shape);
      if (o->c.steps == 0) o->c.steps = 2000;
    }
    run_train(*o);
  });
}

}  // namespace unmask::cli
