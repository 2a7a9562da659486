#include <cstdint>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/gemm.h"
#include "unmask/kernels/quant.h"

namespace unmask::ref {

namespace {

// Row o of w (OC, IC) of any type, converted exactly to f32.
void weight_row(const void* w, DType dtype, int o, int IC, float* dst) {
  const auto* row = static_cast<const uint8_t*>(w) + size_t(o) * row_bytes(dtype, IC);
  if (is_quant_dtype(dtype)) ref::dequantize_row(dtype, row, dst, IC);
  else to_f32(dtype, row, dst, IC);
}

}  // namespace

void linear_forward(float* out, const float* x, const void* w, DType dtype, const float* bias, int T, int OC,
                    int IC) {
  std::vector<double> xr(size_t(T) * size_t(IC));
  for (size_t i = 0; i < xr.size(); ++i) xr[i] = dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(x[i])) : x[i];
  std::vector<float> wr(static_cast<size_t>(IC));
  for (int o = 0; o < OC; ++o) {
    weight_row(w, dtype, o, IC, wr.data());
    for (int t = 0; t < T; ++t) {
      double s = bias ? bias[o] : 0.0;
      for (int i = 0; i < IC; ++i) s += xr[size_t(t) * size_t(IC) + size_t(i)] * wr[size_t(i)];
      out[int64_t(t) * OC + o] = float(s);
    }
  }
}

}  // namespace unmask::ref
