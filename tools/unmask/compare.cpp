// unmask compare: trains an AR twin and a diffusion twin on the same data for the same budget (or loads two
// checkpoints with one tokenizer), measures both (likelihood, generation quality, tasks, speed against quality) and
// writes a report directory. A progress bar per phase; Ctrl-C checkpoints training and stops between phases, and the
// same command resumes where it stopped. The work is the library's (unmask/eval/compare.h); this file reads flags.
#include <fmt/format.h>

#include <fstream>
#include <memory>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "progress.h"
#include "train_options.h"
#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/eval/compare.h"
#include "version.h"

namespace unmask::cli {

namespace {

struct CompareOptions {
  CompareConfig c;
  int64_t tokens = 0;
  int threads = 0;
};

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("model name")) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

void draw(const CompareProgress& p) {
  draw_progress(fmt::format("compare {}/{} {:<16}", p.index, p.phases, p.phase), p.done, p.total, p.unit, p.extra);
}

void run(CompareOptions o, const std::string& command) {
  catch_stop_signals();
  set_num_threads(o.threads);
  CompareConfig& c = o.c;
  if (o.tokens > 0) {
    const int64_t per_step = int64_t(c.train.batch) * c.train.accum * c.train.seq_len;
    check(o.tokens >= per_step, "--tokens {}: a budget below one step of {} tokens (--batch {} x --seq-len {}) trains "
          "nothing", o.tokens, per_step, c.train.batch, c.train.seq_len);
    c.train.steps = int((o.tokens + per_step - 1) / per_step);
  }
  c.command = command;
  c.seed = c.train.seed;
  c.machine = fmt::format("unmask {} (commit {}), {}, {} threads", UNMASK_VERSION, UNMASK_COMMIT, cpu_name(),
                          num_threads());
  if (!run_compare(c, draw, [] { return stop_signal() != 0; })) {
    fmt::print(stderr, "\ninterrupted: what was finished is kept in {}; run the same command again to resume\n",
               c.out_dir);
    throw ExitStatus{128 + stop_signal()};
  }
  fmt::print("report: {}/report.md (plots beside it, every figure in results.json)\n", c.out_dir);
}

std::string joined(int argc, char** argv) {
  std::string s = "unmask";
  for (int i = 1; i < argc; ++i) s += std::string(" ") + argv[i];
  return s;
}

}  // namespace

void add_compare(CLI::App& app, int argc, char** argv) {
  auto* cmd = app.add_subcommand("compare", "Train (or load) an AR twin and a diffusion twin on the same tokens, "
                                            "measure both, and write a report directory (resumable)");
  auto o = std::make_shared<CompareOptions>();
  CompareConfig& c = o->c;
  c.train.steps = 2000;
  cmd->add_option("-o,--out", c.out_dir, "Report directory; the same command again resumes it")->required();
  cmd->add_option("--data", c.data_dir, "Training mode: a directory from `unmask data prepare` (its val.bin is the "
                  "held-out text)");
  add_train_options(cmd, c.train);
  cmd->add_option("--tokens", o->tokens, "Training budget in tokens per twin (sets --steps)")->excludes("--steps")
      ->check(positive());
  cmd->add_option("--diffusion-objective", c.diffusion, "The diffusion twin's objective: mdlm or bd3")
      ->capture_default_str();
  cmd->add_option("--arch", c.diffusion_arch, "mdlm: dream (shifted logits) or llada")->capture_default_str();
  cmd->add_option("--task-fraction", c.task_fraction, "Share of the training tokens that are the tasks' text")
      ->capture_default_str();
  cmd->add_option("--ar", c.ar_model, "Checkpoint mode: the AR model");
  cmd->add_option("--diffusion-model", c.diffusion_model, "Checkpoint mode: the diffusion model");
  cmd->add_option("--text", c.text, "Checkpoint mode: the held-out text");
  cmd->add_option("--tasks", c.tasks, "Tasks to run: reversal, infill, dependency, length")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--task-items", c.task_items, "Items per task (0: each task's default)")->check(non_negative());
  cmd->add_option("--parallel", c.parallel, "Diffusion tokens per step in the task settings")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--samplers", c.samplers, "Diffusion samplers the tasks run, each at every --parallel k (default: "
                  "the model's own): dream, llada, mdlm, remdm, bd3")->delimiter(',');
  cmd->add_option("--elbo-samples", c.elbo_samples, "Monte-Carlo samples of the bound per window")
      ->capture_default_str()->check(positive());
  cmd->add_option("--eval-tokens", c.eval_tokens, "Held-out tokens scored (at most)")->capture_default_str()
      ->check(positive());
  cmd->add_option("--temps", c.temperatures, "Sampling temperatures of the generation frontier")->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--gen-samples", c.gen_samples, "Samples per temperature")->capture_default_str();
  cmd->add_option("--gen-length", c.gen_length, "Tokens per sample")->capture_default_str();
  cmd->add_option("--prompt-tokens", c.prompt_tokens, "Held-out tokens each sample continues")->capture_default_str();
  add_threads_option(cmd, o->threads);
  const std::string command = joined(argc, argv);
  cmd->callback([o, command] { run(*o, command); });
}

}  // namespace unmask::cli
