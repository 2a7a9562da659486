// The trainer: one objective, one backbone, one data directory; logs a curve (CSV + SVG), checkpoints atomically
// with the optimizer state, and resumes exactly where it stopped (the data windows and masks of step s come from
// (seed, s) alone, so a resumed run computes bit for bit what an uninterrupted one would have).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace unmask {

struct TrainConfig {
  std::string objective = "ar";     // ar, mdlm, bd3, sft, joint
  std::string schedule = "linear";  // mdlm/bd3 noise schedule
  std::string preset = "nano";      // model size; the vocabulary comes from the data
  std::string arch;                 // mdlm/sft: llada (default) or dream (shifted logits)
  int d_model = 0, layers = 0, heads = 0, ffn = 0;  // overrides when > 0
  int block = 0;                    // bd3 and joint block size
  double diffusion_weight = 0.3;    // joint: the block-diffusion loss's weight beside the AR loss
  std::string data_dir, out_dir;
  std::string init;                 // start from this model file's weights (its shape, not the preset's)
  bool bf16 = false;                // GEMMs on bf16 copies of the f32 master weights (Model::train_in_bf16)
  int steps = 2000, batch = 12, seq_len = 64, accum = 1, warmup = 100;
  int eval_every = 250, eval_batches = 20, ckpt_every = 250;
  float lr = 1e-3f, min_lr = 1e-4f, weight_decay = 0.1f, beta1 = 0.9f, beta2 = 0.99f, grad_clip = 1.0f;
  double eps = 1e-3;
  uint64_t seed = 1337;
};
std::string to_json(const TrainConfig& c);
TrainConfig train_config_from_json(const std::string& json);  // throws naming the bad field

struct StepReport {
  int64_t step = 0, steps = 0;  // step just finished (1-based), of steps
  double loss = 0, lr = 0, grad_norm = 0;
  double tokens_per_s = 0, elapsed_s = 0, eta_s = 0;
  std::optional<double> val_loss;  // on evaluation steps: mean CE (ar), the NELBO bound per token (mdlm, bd3) or
                                   // per answer token (sft)
  bool checkpointed = false;
};

class Trainer {
 public:
  // A new run in c.out_dir (created); throws if it already holds a checkpoint (resume it instead).
  static Trainer start(const TrainConfig& c);
  // Continues the run in out_dir from its checkpoint; steps > 0 changes the total. Throws naming both numbers when
  // the total (given, or the run's own) is not above the checkpoint's step: there would be nothing to train.
  static Trainer resume(const std::string& out_dir, int steps = 0);
  ~Trainer();
  Trainer(Trainer&&) noexcept;

  // Trains to the last step, calling report after each step, and returns true. A NaN or infinite loss stops the run
  // with an Error (the last checkpoint, written before, stays good). When stop() is true after a step (a signal;
  // under MPI, on any process), the run checkpoints that step (unless it just did) and returns false.
  bool run(const std::function<void(const StepReport&)>& report, const std::function<bool()>& stop = {});
  const TrainConfig& config() const;
  int64_t step() const;
  std::string model_summary() const;

 private:
  struct State;
  explicit Trainer(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace unmask
