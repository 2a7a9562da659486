// The scalar twin of linear_backward_bf16: dout and x rounded to bf16 as the fast path does, then the plain loops
// of ref::linear_backward in double; db from the unrounded dout.
#include <vector>

#include "unmask/kernels/backward.h"
#include "unmask/tensor/dtype.h"

namespace unmask::ref {

void linear_backward_bf16(float* dx, float* dw, float* db, const float* dout, const float* x, const uint16_t* w,
                          int T, int OC, int IC) {
  auto rounded = [](const float* src, size_t n) {
    std::vector<float> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_f32(f32_to_bf16(src[i]));
    return out;
  };
  std::vector<float> w32(size_t(OC) * IC);
  for (size_t i = 0; i < w32.size(); ++i) w32[i] = bf16_to_f32(w[i]);
  const auto dout16 = rounded(dout, size_t(T) * OC), x16 = rounded(x, size_t(T) * IC);
  linear_backward(dx, dw, nullptr, dout16.data(), x16.data(), w32.data(), T, OC, IC);
  for (int o = 0; db && o < OC; ++o) {
    double s = 0.0;
    for (int t = 0; t < T; ++t) s += dout[int64_t(t) * OC + o];
    db[o] = float(db[o] + s);
  }
}

}  // namespace unmask::ref
