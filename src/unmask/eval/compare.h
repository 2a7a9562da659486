// `unmask compare`: an AR twin and a diffusion twin of the same size, trained on the same tokens for the same steps
// (or two existing checkpoints with one tokenizer), measured side by side, and a report directory written:
//
//   OUT/compare.json           the settings (a rerun with other settings is refused; the same settings resume)
//   OUT/data/                  the corpus's shards with the tasks' training text mixed in, and its tokenizer
//   OUT/ar/, OUT/diffusion/    the training runs (checkpoint.gguf, log.csv, loss.svg)
//   OUT/phases/NAME.json       each finished phase's figures: a rerun skips finished phases and resumes training
//   OUT/report.md, OUT/*.svg   tables and plots; OUT/results.json every figure with the command, seed, commit, machine
//
// Phases, in order: data, train-ar, train-diffusion (training mode only), likelihood (AR perplexity against the
// diffusion bound on the held-out tokens), gen (the gen-ppl / entropy / MAUVE frontier over temperatures, judged by the
// AR twin), one phase per task (task-reversal, task-dependency need the task text in training; task-infill,
// task-length), speed (the speed/quality frontier of each decoding setting on the dependency task, or infill when it
// is not run), and report.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "unmask/train/trainer.h"

namespace unmask {

struct CompareConfig {
  std::string out_dir;
  // Training mode: a prepared data directory (`unmask data prepare`) and the twins' shared settings (train.objective
  // is set per twin; diffusion is mdlm or bd3, diffusion_arch dream or llada for mdlm).
  std::string data_dir;
  TrainConfig train;
  std::string diffusion = "mdlm", diffusion_arch = "dream";
  double task_fraction = 0.1;  // share of the training tokens that are task text (reversal, dependency)
  // Checkpoint mode: two models with one tokenizer, and held-out text (a file) or the data directory's val.bin.
  std::string ar_model, diffusion_model, text;
  // Evaluation.
  std::vector<std::string> tasks{"reversal", "infill", "dependency", "length"};
  int task_items = 0;                      // per task; 0: each task's default
  std::vector<int> parallel{1, 2, 4, 8};   // diffusion tokens per step in the task settings
  std::vector<std::string> samplers;       // diffusion samplers the tasks run (each at every k); empty: the model's
  int elbo_samples = 32;
  int64_t eval_tokens = 32768;             // held-out tokens the likelihood phase scores (at most)
  std::vector<double> temperatures{0.7, 0.85, 1.0};
  int gen_samples = 32, gen_length = 64, prompt_tokens = 16;
  uint64_t seed = 1;
  std::string command, machine;            // recorded in results.json (machine: the commit too)

  bool training() const { return ar_model.empty(); }
  void validate() const;  // throws naming the setting that cannot work
};
nlohmann::json to_json(const CompareConfig& c);

// A phase's progress: (phase, index of the phase, phases in all, done, total, unit, extra text).
struct CompareProgress {
  std::string phase;
  int index = 0, phases = 0;
  int64_t done = 0, total = 0;
  std::string unit, extra;
};
using CompareReport = std::function<void(const CompareProgress&)>;

// Runs (or resumes) every phase and writes the report. stop: asked between steps of training and between phases;
// when it returns true the run checkpoints and returns false (rerun to resume). Throws Error for bad settings, a
// checkpoint pair that does not match, a budget too small to train, a held-out text shorter than one window.
bool run_compare(const CompareConfig& c, const CompareReport& report, const std::function<bool()>& stop = {});

}  // namespace unmask
