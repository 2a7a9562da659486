#include "unmask/kernels/softmax.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "unmask/base/error.h"
#include "unmask/kernels/vec_math.h"

namespace unmask {

// x (T, V) -> out (T, V), row by row, rows split statically over threads. A row with no entry above -inf has no
// distribution: it is left as zeros and the call throws Error naming the first such row once all rows are done
// (an exception may not leave an OpenMP region).
void softmax_forward(float* out, const float* x, int T, int V) {
  int bad_row = T;
#pragma omp parallel for schedule(static) reduction(min : bad_row) if (int64_t(T) * V >= 32768)
  for (int t = 0; t < T; ++t) {
    const float* xr = x + int64_t(t) * V;
    float* o = out + int64_t(t) * V;
    float m = vec::max_of(xr, V);
    if (m == -std::numeric_limits<float>::infinity()) {
      for (int j = 0; j < V; ++j) o[j] = 0.0f;
      bad_row = t < bad_row ? t : bad_row;
      continue;
    }
    float s = vec::exp_shift_sum(o, xr, V, m);
    vec::scale(o, V, 1.0f / s);
  }
  check(bad_row == T, "softmax_forward: row {} of {} has all {} entries -inf, no distribution", bad_row, T, V);
}

}  // namespace unmask
