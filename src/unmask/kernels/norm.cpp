#include "unmask/kernels/norm.h"

#include <cmath>
#include <cstdint>

namespace unmask {

// x (T, C), w (C) -> out (T, C); rstd (T) or null. One row per iteration, rows split statically over threads; the
// sum of squares is an f32 SIMD reduction (lanes then a fixed tree), so the result does not depend on threads.
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int T, int C, float eps) {
#pragma omp parallel for schedule(static) if (int64_t(T) * C >= 32768)
  for (int t = 0; t < T; ++t) {
    const float* xr = x + int64_t(t) * C;
    float* o = out + int64_t(t) * C;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; ++c) ss += xr[c] * xr[c];
    float r = 1.0f / std::sqrt(ss / float(C) + eps);
#pragma omp simd
    for (int c = 0; c < C; ++c) o[c] = xr[c] * r * w[c];
    if (rstd) rstd[t] = r;
  }
}

}  // namespace unmask
