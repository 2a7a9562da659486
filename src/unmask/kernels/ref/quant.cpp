// Scalar twins of the quantized kernels: each value straight from its block formula (quant.h), bits read one by
// one, with ggml's order of float operations (so the bytes of a dequantized row match ggml's dequantize_row_*).
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/quant.h"

namespace unmask::ref {
namespace {

int bit(const uint8_t* bytes, int k) { return (bytes[k / 8] >> (k % 8)) & 1; }

// 32-value blocks: value j's low 4 bits are the low (j < 16) or high nibble of qs[j % 16]; bit 4 is bit j of qh.
int nibble32(const uint8_t* qs, int j) { return j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4); }

float q8_0(const BlockQ8_0& b, int j) { return f16_to_f32(b.d) * float(b.qs[j]); }
float q4_0(const BlockQ4_0& b, int j) { return f16_to_f32(b.d) * float(nibble32(b.qs, j) - 8); }
// Every product below is exact in f32 (an f16 scale, 11 significant bits, times an integer scale and a code of at
// most 13 bits together), so a sum rounds once whether or not the compiler fuses it into an FMA.
float q4_1(const BlockQ4_1& b, int j) { return float(nibble32(b.qs, j)) * f16_to_f32(b.d) + f16_to_f32(b.m); }
float q5_0(const BlockQ5_0& b, int j) {
  return float((nibble32(b.qs, j) | (bit(b.qh, j) << 4)) - 16) * f16_to_f32(b.d);
}
float q5_1(const BlockQ5_1& b, int j) {
  return float(nibble32(b.qs, j) | (bit(b.qh, j) << 4)) * f16_to_f32(b.d) + f16_to_f32(b.m);
}

// Q2_K/Q3_K: value i = 128h + 32s + l has its low 2 bits at bits 2s of qs[32h + l]; sub-block i / 16.
int low2(const uint8_t* qs, int i) { return (qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3; }

float q2_k(const BlockQ2_K& b, int i) {
  const uint8_t sc = b.scales[i / 16];
  return (f16_to_f32(b.d) * float(sc & 0xF)) * float(low2(b.qs, i)) - f16_to_f32(b.dmin) * float(sc >> 4);
}

float q3_k(const BlockQ3_K& b, int i) {
  const int j = i / 16;  // scale j: 4 bits from a nibble of scales[j % 8], 2 from scales[8 + j % 4]
  const int lo = (b.scales[j % 8] >> (j < 8 ? 0 : 4)) & 0xF, hi = (b.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  const int h = i / 128, s = (i % 128) / 32, l = i % 32;
  const int q = low2(b.qs, i) | (bit(b.hmask, 8 * l + 4 * h + s) << 2);  // bit 4h + s of hmask[l]
  return (f16_to_f32(b.d) * float((lo | (hi << 4)) - 32)) * float(q - 4);
}

// Q4_K/Q5_K: value i = 64c + 32p + l has its low 4 bits in the low (p = 0) or high nibble of qs[32c + l].
int nibble_k(const uint8_t* qs, int i) { return (qs[32 * (i / 64) + i % 32] >> (4 * ((i / 32) % 2))) & 0xF; }

template <class Block>
float scale_min(const Block& b, int i, int q) {
  int sc, m;
  scale_min_k4(i / 32, b.scales, sc, m);
  return (f16_to_f32(b.d) * float(sc)) * float(q) - f16_to_f32(b.dmin) * float(m);
}
float q4_k(const BlockQ4_K& b, int i) { return scale_min(b, i, nibble_k(b.qs, i)); }
float q5_k(const BlockQ5_K& b, int i) {
  return scale_min(b, i, nibble_k(b.qs, i) | (bit(b.qh, 8 * (i % 32) + i / 32) << 4));  // bit 2c + p of qh[l]
}

float q6_k(const BlockQ6_K& b, int i) {
  const int half = i / 128, r = i % 128, quarter = r / 32, l = r % 32;  // r = quarter*32 + l
  const uint8_t lo = b.ql[half * 64 + (quarter % 2) * 32 + l];
  const int low4 = quarter < 2 ? (lo & 0xF) : (lo >> 4);
  const int high2 = (b.qh[half * 32 + l] >> (2 * quarter)) & 3;
  return (f16_to_f32(b.d) * float(b.scales[i / 16])) * float((low4 | (high2 << 4)) - 32);
}

template <class Block>
void each_value(float (*value)(const Block&, int), const void* src, float* dst, int64_t nb, int bs) {
  const auto* blocks = static_cast<const Block*>(src);
  for (int64_t b = 0; b < nb; ++b)
    for (int i = 0; i < bs; ++i) dst[b * bs + i] = value(blocks[b], i);
}

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  check(is_quant_dtype(t), "ref::dequantize_row: {} is not a quantized type", dtype_name(t));
  const int bs = dtype_info(t).block_size;
  check(n % bs == 0, "ref::dequantize_row: n = {} is not a multiple of the {} block size {}", n, dtype_name(t), bs);
  const int64_t nb = n / bs;
  switch (t) {
    case DType::Q8_0: return each_value(q8_0, src, dst, nb, bs);
    case DType::Q4_0: return each_value(q4_0, src, dst, nb, bs);
    case DType::Q4_1: return each_value(q4_1, src, dst, nb, bs);
    case DType::Q5_0: return each_value(q5_0, src, dst, nb, bs);
    case DType::Q5_1: return each_value(q5_1, src, dst, nb, bs);
    case DType::Q2_K: return each_value(q2_k, src, dst, nb, bs);
    case DType::Q3_K: return each_value(q3_k, src, dst, nb, bs);
    case DType::Q4_K: return each_value(q4_k, src, dst, nb, bs);
    case DType::Q5_K: return each_value(q5_k, src, dst, nb, bs);
    default: return each_value(q6_k, src, dst, nb, bs);
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
