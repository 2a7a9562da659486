#include "unmask/train/adamw.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "unmask/base/error.h"

namespace unmask {

std::vector<ParamGroup> param_groups(const ModelWeights& w, bool decay_embeddings) {
  std::vector<ParamGroup> g;
  for (const auto& [spec, view] : w.tensors()) {
    bool no_decay = spec.name.ends_with("norm.weight") || spec.name.ends_with(".bias") ||
                    (!decay_embeddings && spec.name == "token_embd.weight");
    g.push_back({w.offset_of(view), size_t(view.nelements()), !no_decay});
  }
  return g;
}

AdamW::AdamW(size_t n_params, std::vector<ParamGroup> groups, AdamWConfig c)
    : groups_(std::move(groups)), c_(c), m_(n_params, 0.0f), v_(n_params, 0.0f) {
  for (const auto& g : groups_)
    check(g.offset + g.n <= n_params, "AdamW: a group [{}, {}) is outside the {} parameters", g.offset,
          g.offset + g.n, n_params);
}

void AdamW::step(float* params, const float* grads, float lr) {
  ++t_;
  const float b1 = c_.beta1, b2 = c_.beta2;
  const float c1 = 1.0f / (1.0f - std::pow(b1, float(t_))), c2 = 1.0f / (1.0f - std::pow(b2, float(t_)));
  for (const ParamGroup& g : groups_) {
    const float wd = g.decay ? c_.weight_decay : 0.0f;
    float *p = params + g.offset, *m = m_.data() + g.offset, *v = v_.data() + g.offset;
    const float* gr = grads + g.offset;
#pragma omp parallel for simd schedule(static) if (g.n >= 65536)
    for (size_t i = 0; i < g.n; ++i) {
      m[i] = b1 * m[i] + (1.0f - b1) * gr[i];
      v[i] = b2 * v[i] + (1.0f - b2) * gr[i] * gr[i];
      p[i] -= lr * (m[i] * c1 / (std::sqrt(v[i] * c2) + c_.eps) + wd * p[i]);
    }
  }
}

float lr_at(int64_t step, int64_t total, int64_t warmup, float lr, float min_lr) {
  if (step < warmup) return lr * float(step + 1) / float(warmup);
  if (step >= total) return min_lr;
  double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  return float(min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * progress)) * (lr - min_lr));
}

double clip_grad_norm(float* grads, size_t n, double max_norm) {
  constexpr size_t kChunk = 1 << 16;
  const size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < chunks; ++c) {
    double s = 0;
    for (size_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) s += double(grads[i]) * grads[i];
    partial[c] = s;
  }
  double sum = 0;
  for (double s : partial) sum += s;  // in chunk order: deterministic
  const double norm = std::sqrt(sum);
  if (max_norm > 0 && norm > max_norm) {
    const float scale = float(max_norm / norm);
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; ++i) grads[i] *= scale;
  }
  return norm;
}

}  // namespace unmask
