#include <cmath>

#include "unmask/kernels/activations.h"

namespace unmask::ref {

void silu_forward(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = float(double(x[i]) / (1.0 + std::exp(-double(x[i]))));
}

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double g = gate[i];
    out[i] = float(g / (1.0 + std::exp(-g)) * double(up[i]));
  }
}

}  // namespace unmask::ref
