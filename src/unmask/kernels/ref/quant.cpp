// Scalar twins of the quantized kernels: each value straight from its block formula (quant.h).
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/quant.h"

namespace unmask::ref {
namespace {

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  const int bs = dtype_info(t).block_size;
  check(is_quant_dtype(t), "ref::dequantize_row: {} is not a quantized type", dtype_name(t));
  check(n % bs == 0, "ref::dequantize_row: n = {} is not a multiple of the {} block size {}", n, dtype_name(t), bs);
  for (int64_t b = 0; b < n / bs; ++b) {
    float* y = dst + b * bs;
    if (t == DType::Q8_0) {
      const BlockQ8_0& blk = static_cast<const BlockQ8_0*>(src)[b];
      const float d = f16_to_f32(blk.d);
      for (int j = 0; j < 32; ++j) y[j] = d * float(blk.qs[j]);
    } else if (t == DType::Q4_0) {
      const BlockQ4_0& blk = static_cast<const BlockQ4_0*>(src)[b];
      const float d = f16_to_f32(blk.d);
      for (int j = 0; j < 16; ++j) {
        y[j] = d * float((blk.qs[j] & 0xF) - 8);
        y[j + 16] = d * float((blk.qs[j] >> 4) - 8);
      }
    } else if (t == DType::Q4_K) {
      const BlockQ4_K& blk = static_cast<const BlockQ4_K*>(src)[b];
      const float d = f16_to_f32(blk.d), dmin = f16_to_f32(blk.dmin);
      for (int i = 0; i < 256; ++i) {
        const int j = i / 32;  // sub-block
        int sc, m;
        scale_min_k4(j, blk.scales, sc, m);
        const uint8_t byte = blk.qs[(i / 64) * 32 + i % 32];
        const int q = (j % 2 == 0) ? (byte & 0xF) : (byte >> 4);
        y[i] = (d * float(sc)) * float(q) - dmin * float(m);
      }
    } else {  // Q6_K
      const BlockQ6_K& blk = static_cast<const BlockQ6_K*>(src)[b];
      const float d = f16_to_f32(blk.d);
      for (int i = 0; i < 256; ++i) {
        const int half = i / 128, r = i % 128, quarter = r / 32, l = r % 32;  // r = quarter*32 + l
        const uint8_t lo = blk.ql[half * 64 + (quarter % 2) * 32 + l];
        const int low4 = quarter < 2 ? (lo & 0xF) : (lo >> 4);
        const int high2 = (blk.qh[half * 32 + l] >> (2 * quarter)) & 3;
        const int q = (low4 | (high2 << 4)) - 32;
        y[i] = (d * float(blk.scales[i / 16])) * float(q);
      }
    }
  }
}

double vec_dot(DType t, int64_t n, const void* w_row, const float* x) {
  std::vector<float> w(static_cast<size_t>(n));
  ref::dequantize_row(t, w_row, w.data(), n);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(w[size_t(i)]) * double(x[i]);
  return s;
}

}  // namespace unmask::ref
