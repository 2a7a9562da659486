#include <cmath>
#include <cstdint>
#include <limits>

#include "unmask/base/error.h"
#include "unmask/kernels/softmax.h"

namespace unmask::ref {

void softmax_forward(float* out, const float* x, int T, int V) {
  for (int t = 0; t < T; ++t) {
    const float* xr = x + int64_t(t) * V;
    double m = -std::numeric_limits<double>::infinity();
    for (int j = 0; j < V; ++j) m = std::max(m, double(xr[j]));
    check(m != -std::numeric_limits<double>::infinity(), "softmax_forward: row {} of {} has all {} entries -inf", t,
          T, V);
    double s = 0.0;
    for (int j = 0; j < V; ++j) s += std::exp(double(xr[j]) - m);
    for (int j = 0; j < V; ++j) out[int64_t(t) * V + j] = float(std::exp(double(xr[j]) - m) / s);
  }
}

}  // namespace unmask::ref
