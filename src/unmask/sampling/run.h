// Internal to sampling/: the state of one request and the pieces every sampler shares — logits for the rows a step
// reads (shifted for Dream-style models, guided by CFG), token choice in parallel over positions with one random
// stream per (step, position), committing with the step report, and the statistics.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "unmask/base/rng.h"
#include "unmask/base/timer.h"
#include "unmask/sampling/logits.h"
#include "unmask/sampling/sampler.h"

namespace unmask::detail {

class Run {
 public:
  Run(Backbone& bb, const SamplerConfig& cfg, Canvas canvas, const StepCallback& cb);

  const SamplerConfig& cfg;
  const ModelConfig& mc;
  Backbone& bb;

  int size() const { return int(res_.canvas.size()); }
  int prompt_length() const { return res_.prompt_length; }
  std::span<const int32_t> canvas() const { return res_.canvas; }
  bool masked(int p) const { return res_.canvas[size_t(p)] == mc.mask_token; }
  bool given(int p) const { return given_[size_t(p)] != 0; }
  std::vector<int> masked_in(int lo, int hi) const;  // masked positions in [lo, hi), ascending
  int step() const { return step_; }
  void set_block(int b) { block_ = b; }
  bool stopped() const { return stopped_; }

  // Logits rows for `positions`, in order, from a full pass over the canvas (a CFG pair when cfg_scale > 0).
  void logits_full(std::span<const int> positions);
  // The same from the span canvas[begin, end) continuing the backbone's cache; commit: the cache keeps the span.
  void logits_cached(int begin, int end, std::span<const int> positions, bool commit);
  void span_rows(int begin, int end, std::span<const int> positions);  // rows_ of the positions in a span
  // Every row of a joint model's pass over `tokens` continuing the cache, rows [from, n) a draft block (spec.cpp).
  void logits_draft(std::span<const int32_t> tokens, int from);
  // Rows for `positions` of the canvas span [begin, end) run as a draft block over the cache (bd3 on a joint model).
  void logits_block_draft(int begin, int end, std::span<const int> positions);
  // The span [begin, end) of the canvas rerun against the whole cached canvas (the dual cache).
  void logits_window(int begin, int end, std::span<const int> positions);
  const float* row(size_t i) const { return logits_.data() + i * size_t(mc.vocab); }
  float* row(size_t i) { return logits_.data() + i * size_t(mc.vocab); }

  // A random stream owned by (this step, position, salt): independent of threads and of other positions.
  Rng stream(int position, int salt) const;
  // A choice for each positions[i] from row(i) (parallel over positions).
  std::vector<Choice> choose(std::span<const int> positions, const TokenRule& rule);

  // Writes tokens at positions, records this step as their commit step, reports, and moves to the next step.
  // Returns false when the callback asked to stop.
  bool commit(std::span<const int> positions, std::span<const int32_t> tokens, std::span<const float> conf,
              std::span<const int> remasked = {});
  // A step that ran the model but committed nothing is still a step (it is reported, with nothing committed).
  void append(int32_t token);  // AR: the canvas grows by one position (committed by the next commit())
  void truncate(int n);  // drop canvas positions from n on (block diffusion stopping at EOS)
  GenerateStats& stats() { return res_.stats; }
  GenerateResult finish();

 private:
  void record_forward(int positions_run, int rows, double seconds);
  int row_of(int p) const { return mc.shift_logits ? (p > 0 ? p - 1 : 0) : p; }
  void guide(int R, std::span<const float> both);

  GenerateResult res_;
  const StepCallback& cb_;
  std::vector<char> given_;
  std::vector<float> logits_;   // (R, V)
  std::vector<int32_t> rows_;
  Rng rng_;
  Timer total_;
  int step_ = 0, block_ = 0;
  bool stopped_ = false;
};

TokenRule token_rule(const SamplerConfig& cfg, const ModelConfig& mc);

// The samplers, each over a prepared Run.
void run_ar(Run& r);
void run_llada(Run& r);
void run_dream(Run& r);
void run_mdlm(Run& r);  // MDLM's ancestral sampler, and ReMDM when cfg.kind == kRemdm
// One MDLM ancestral step i of `steps` over the masked positions pos with their choices (no remasking when
// cfg.kind != kRemdm); psi keeps each position's confidence when revealed. ok: false when the run must stop.
// Returns whether the canvas changed.
bool ddpm_step(Run& r, int i, int steps, std::span<const int> pos, const std::vector<Choice>& ch,
               std::vector<double>& psi, bool& ok);
void run_bd3(Run& r);
void run_spec(Run& r);  // self-speculation with a joint model

}  // namespace unmask::detail
