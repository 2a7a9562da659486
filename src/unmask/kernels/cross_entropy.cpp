// Cross-entropy of logits against targets, forward and backward, row by row (rows split statically over threads;
// each row is reduced in a fixed order, so the result does not depend on the thread count).
// Stability: logits are shifted by the row max before exp, and the loss is formed as log Σ exp(x - m) + (m - x_y),
// never as (m + log Σ) - x_y, which would cancel catastrophically when the logits are large.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>

#include "unmask/base/error.h"
#include "unmask/kernels/backward.h"
#include "unmask/kernels/vec_math.h"

namespace unmask {

namespace {

constexpr int64_t kParallelMin = 32768;  // elements below which one thread does the work

void check_targets(const char* who, const int32_t* targets, int T, int V) {
  for (int t = 0; t < T; ++t)
    check(targets[t] >= -1 && targets[t] < V, "{}: target {} at row {} is outside [0, {}) and not -1 (ignored)",
          who, targets[t], t, V);
}

// Σ exp(x - m) over the row, with m = max: written into scratch (V) or, when scratch is the row, in place.
float shifted_sum(float* scratch, const float* xr, int V, float& m) {
  m = vec::max_of(xr, V);
  return vec::exp_shift_sum(scratch, xr, V, m);
}

}  // namespace

// logits (T, V), targets (T) -> losses (T).
void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int T, int V) {
  check(T >= 0 && V > 0, "cross_entropy_forward: T {} V {}; expected T >= 0, V > 0", T, V);
  check_targets("cross_entropy_forward", targets, T, V);
#pragma omp parallel if (int64_t(T) * V >= kParallelMin && T > 1)
  {
    std::unique_ptr<float[]> e(new float[size_t(V)]);
#pragma omp for schedule(static)
    for (int t = 0; t < T; ++t) {
      if (targets[t] < 0) {
        losses[t] = 0.0f;
        continue;
      }
      const float* xr = logits + int64_t(t) * V;
      float m;
      const float s = shifted_sum(e.get(), xr, V, m);
      losses[t] = std::log(s) + (m - xr[targets[t]]);
    }
  }
}

// logits (T, V), targets (T), dloss (T) -> dlogits (T, V) =; dlogits may alias logits (each row's max and sum are
// taken before the row is overwritten).
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss, int T,
                            int V) {
  check(T >= 0 && V > 0, "cross_entropy_backward: T {} V {}; expected T >= 0, V > 0", T, V);
  check_targets("cross_entropy_backward", targets, T, V);
#pragma omp parallel for schedule(static) if (int64_t(T) * V >= kParallelMin && T > 1)
  for (int t = 0; t < T; ++t) {
    float* d = dlogits + int64_t(t) * V;
    if (targets[t] < 0) {
      std::fill(d, d + V, 0.0f);
      continue;
    }
    float m;
    const float s = shifted_sum(d, logits + int64_t(t) * V, V, m);
    vec::scale(d, V, dloss[t] / s);
    d[targets[t]] -= dloss[t];
  }
}

}  // namespace unmask
