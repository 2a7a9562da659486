// llama.cpp-compatible quantized blocks: Q4_0, Q8_0, Q4_K, Q6_K (the types of a Q4_K_M GGUF file). The byte
// layouts and the reference quantization follow ggml, so rows quantized here and rows read from a GGUF file are
// interchangeable. Scales are IEEE binary16 (f16_to_f32 / f32_to_f16 of tensor/dtype.h).
//
//   Q8_0  32 values:  x = d · q,                      q int8
//   Q4_0  32 values:  x = d · (q - 8),                q 4-bit; value j in the low nibble of qs[j], j+16 in the high
//   Q4_K 256 values:  8 sub-blocks of 32: x = d·sc_j · q - dmin·m_j, q 4-bit, sc_j/m_j 6-bit packed in scales[12]
//   Q6_K 256 values: 16 sub-blocks of 16: x = d·sc_j · (q - 32), q 6-bit (low 4 in ql, high 2 in qh), sc_j int8
#pragma once

#include <cstdint>
#include <vector>

#include "unmask/tensor/dtype.h"

namespace unmask {

struct BlockQ8_0 {
  uint16_t d;       // f16 scale
  int8_t qs[32];
};
struct BlockQ4_0 {
  uint16_t d;       // f16 scale
  uint8_t qs[16];   // nibbles: low = value j, high = value j + 16
};
struct BlockQ4_K {
  uint16_t d;         // f16 super-scale of the sub-block scales
  uint16_t dmin;      // f16 super-scale of the sub-block mins
  uint8_t scales[12]; // 8 scales + 8 mins, 6 bits each (see scale_min_k4)
  uint8_t qs[128];    // per 64 values: 32 bytes, low nibbles = first 32, high nibbles = next 32
};
// Q4_K packs 8 six-bit scales and 8 six-bit mins into 12 bytes: sub-blocks 0-3 use the low 6 bits of bytes 0-3
// (scale) and 4-7 (min); sub-blocks 4-7 take their low 4 bits from the nibbles of bytes 8-11 and their top 2 bits
// from the spare top bits of bytes 0-3 (scale) and 4-7 (min). Sub-block j's scale and min from scales q.
inline void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

struct BlockQ6_K {
  uint8_t ql[128];    // low 4 bits
  uint8_t qh[64];     // high 2 bits
  int8_t scales[16];  // one per 16 values
  uint16_t d;         // f16 super-scale
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ6_K) == 210);

// True for the four block types above.
bool is_quant_dtype(DType t);

// Activations quantized for the integer dot products with rows of type t: T rows of n values as int8 with one
// scale per group (32 values for Q8_0/Q4_0, 256 for the K-quants, as ggml's Q8_0/Q8_K activations; the scale is
// stored once per 32 values either way) and the sum of every 16 codes (the K-quants' offsets and mins). The
// buffers grow to the largest call and are reused: no allocation once warm.
struct QuantizedActs {
  int T = 0, n = 0;
  std::vector<int8_t> q;       // (T, n)
  std::vector<float> d;        // (T, n/32)
  std::vector<int16_t> sum16;  // (T, n/16)
  // The value the dot products see for x[t][k]: d · q.
  float value(int t, int64_t k) const { return d[size_t(t) * size_t(n / 32) + size_t(k / 32)] * float(q[size_t(t) * size_t(n) + size_t(k)]); }
};
// Values per activation scale for weights of type t: 32 (Q8_0, Q4_0) or 256 (Q4_K, Q6_K).
int act_group(DType t);
// x (T, n) -> a; n a multiple of act_group(t) (checked). Rounding to nearest, ties to even.
void quantize_acts(DType t, const float* x, int T, int64_t n, QuantizedActs& a);
// Dot product of one quantized row (a.n values) with row `row` of a (quantized for t): Σ_blocks of integer dots
// times the block scales, accumulated in f32. AVX-512 VNNI where the CPU has it (cpu.h), portable C++ otherwise.
float dot_acts(DType t, const void* w_row, const QuantizedActs& a, int row);

// src: n/block_size blocks -> dst (n). n a multiple of the block size (checked).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// A row of any type (quantized, f16, bf16, f32) -> dst (n) in f32, exactly as ref::dequantize_row / to_f32 give it.
void row_to_f32(DType t, const void* src, float* dst, int64_t n);
// The reference quantization of ggml (quantize_row_*_ref): src (n) -> dst, n/block_size blocks.
void quantize_row(DType t, const float* src, void* dst, int64_t n);
// Dot product of one quantized row (n values) with x (n): x quantized as quantize_acts does, then dot_acts.
float vec_dot(DType t, int64_t n, const void* w_row, const float* x);
// w (OC, IC) quantized rows, x (IC) -> y (OC). x is quantized once into scratch; rows run in parallel (OpenMP),
// each y[o] by one thread, so the result does not depend on the thread count.
void matvec(DType t, const void* w, int OC, int IC, const float* x, float* y, QuantizedActs& scratch);

namespace ref {
// Value by value from the block formulas above.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Dequantize the row, then the dot product in double (x not quantized).
double vec_dot(DType t, int64_t n, const void* w_row, const float* x);
}  // namespace ref

}  // namespace unmask
