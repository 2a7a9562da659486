#include <cmath>
#include <cstdint>

#include "unmask/kernels/norm.h"

namespace unmask::ref {

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int T, int C, float eps) {
  for (int t = 0; t < T; ++t) {
    const float* xr = x + int64_t(t) * C;
    double ss = 0.0;
    for (int c = 0; c < C; ++c) ss += double(xr[c]) * xr[c];
    double r = 1.0 / std::sqrt(ss / C + double(eps));
    for (int c = 0; c < C; ++c) out[int64_t(t) * C + c] = float(double(xr[c]) * r * w[c]);
    if (rstd) rstd[t] = float(r);
  }
}

}  // namespace unmask::ref
