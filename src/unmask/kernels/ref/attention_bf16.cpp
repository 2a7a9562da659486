#include <cmath>
#include <cstdint>
#include <vector>

#include "unmask/kernels/attention.h"
#include "unmask/tensor/dtype.h"

namespace unmask::ref {

namespace {

// x rounded to bf16 as vcvtne2ps2bf16 does: subnormal inputs become (signed) zero, the rest round to nearest even.
float round_bf16(float x) {
  if (std::fpclassify(x) == FP_SUBNORMAL) return std::copysign(0.0f, x);
  return bf16_to_f32(f32_to_bf16(x));
}

std::vector<float> rounded(const float* x, int64_t n) {
  std::vector<float> r(n);
  for (int64_t i = 0; i < n; ++i) r[i] = round_bf16(x[i]);
  return r;
}

}  // namespace

// q (Tq, Hq, D), k (Tk, Hkv, D), v (Tk, Hkv, D), spans (Tq) -> out (Tq, Hq, D), lse (Tq, Hq) or null.
void attention_forward_bf16(float* out, float* lse, const float* q, const float* k, const float* v,
                            const KeySpan* spans, int Tq, int Tk, int Hq, int Hkv, int D, float scale) {
  const auto qr = rounded(q, int64_t(Tq) * Hq * D);
  const auto kr = rounded(k, int64_t(Tk) * Hkv * D), vr = rounded(v, int64_t(Tk) * Hkv * D);
  ref::attention_forward(out, lse, qr.data(), kr.data(), vr.data(), spans, Tq, Tk, Hq, Hkv, D, scale);
}

}  // namespace unmask::ref
