// Measures how far an approximate cache drifts from the exact pass: a Backbone that forwards every call to another
// one and, for each cached span run without commit, also runs the whole sequence (cached tokens + span) without a
// cache and compares the logits of the same rows.
#pragma once

#include <vector>

#include "unmask/sampling/backbone.h"

namespace unmask {

struct DriftStats {
  int compared_calls = 0;
  int64_t rows = 0;
  int64_t argmax_changed = 0;  // rows whose argmax differs from the exact pass
  double max_abs = 0;          // largest |logit difference|
  double mean_max_abs = 0;     // mean over rows of the row's largest |difference|
};

class DriftProbe : public Backbone {
 public:
  DriftProbe(Backbone& inner, Backbone& exact) : in_(inner), exact_(exact) {}
  const ModelConfig& config() const override { return in_.config(); }
  void forward(const Batch& b, float* logits, std::span<const int32_t> rows) override { in_.forward(b, logits, rows); }
  void forward_cached(std::span<const int32_t> tokens, float* logits, std::span<const int32_t> rows,
                      bool commit) override;
  void forward_window(int begin, std::span<const int32_t> tokens, float* logits,
                      std::span<const int32_t> rows) override;
  int cached() const override { return in_.cached(); }
  void truncate(int n) override;
  const DriftStats& stats() const { return s_; }

 private:
  // Runs seq without a cache and compares rows (base + rows[i]) with the cached logits.
  void compare(const std::vector<int32_t>& seq, int base, const float* logits, std::span<const int32_t> rows);
  Backbone& in_;
  Backbone& exact_;
  std::vector<int32_t> cached_tokens_;
  std::vector<float> exact_logits_;
  DriftStats s_;
};

}  // namespace unmask
