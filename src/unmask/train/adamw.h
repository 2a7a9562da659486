// AdamW over the one flat parameter buffer (llm.c): decoupled weight decay, applied per group so that norms,
// biases and embeddings are not decayed by default; a warmup + cosine learning-rate schedule; gradient clipping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "unmask/model/weights.h"

namespace unmask {

struct ParamGroup {
  size_t offset = 0, n = 0;  // floats in the flat buffer
  bool decay = true;
};

// One group per tensor of w: matrices decay; norms, biases and the embedding (also when tied) do not, unless
// decay_embeddings.
std::vector<ParamGroup> param_groups(const ModelWeights& w, bool decay_embeddings = false);

struct AdamWConfig {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};

class AdamW {
 public:
  AdamW(size_t n_params, std::vector<ParamGroup> groups, AdamWConfig c);
  // params -= lr · (m̂ / (sqrt(v̂) + eps) + wd · params) for decayed groups; step() counts t from 1.
  void step(float* params, const float* grads, float lr);
  int64_t t() const { return t_; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  void set_t(int64_t t) { t_ = t; }

 private:
  std::vector<ParamGroup> groups_;
  AdamWConfig c_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

// Linear warmup over `warmup` steps to lr, then cosine decay to min_lr at `total` steps.
float lr_at(int64_t step, int64_t total, int64_t warmup, float lr, float min_lr);

// Scales grads so that their global L2 norm is at most max_norm (when > 0); returns the norm before clipping.
// The sum is taken in double, in a fixed order: the same result whatever the thread count.
double clip_grad_norm(float* grads, size_t n, double max_norm);

}  // namespace unmask
