#include <cstdint>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/gemm.h"

namespace unmask::ref {

void linear_forward(float* out, const float* x, const void* w, DType dtype, const float* bias, int T, int OC,
                    int IC) {
  check(dtype == DType::F32 || dtype == DType::BF16, "ref::linear_forward: type {} unsupported", dtype_name(dtype));
  std::vector<double> xr(IC);
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < IC; ++i) {
      float v = x[int64_t(t) * IC + i];
      xr[i] = dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(v)) : v;
    }
    for (int o = 0; o < OC; ++o) {
      double s = bias ? bias[o] : 0.0;
      for (int i = 0; i < IC; ++i) {
        int64_t at = int64_t(o) * IC + i;
        double wv = dtype == DType::BF16 ? bf16_to_f32(static_cast<const uint16_t*>(w)[at])
                                         : static_cast<const float*>(w)[at];
        s += xr[i] * wv;
      }
      out[int64_t(t) * OC + o] = float(s);
    }
  }
}

}  // namespace unmask::ref
