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

// src: n/block_size blocks -> dst (n). n a multiple of the block size (checked).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// The reference quantization of ggml (quantize_row_*_ref): src (n) -> dst, n/block_size blocks.
void quantize_row(DType t, const float* src, void* dst, int64_t n);
// Dot product of one quantized row (n values) with x (n). Q8_0/Q4_0 quantize x to int8 blocks of 32 and
// Q4_K/Q6_K to int8 blocks of 256 (as ggml's Q8_0 / Q8_K activations) and use VNNI integer dots.
float vec_dot(DType t, int64_t n, const void* w_row, const float* x);
// w (OC, IC) quantized rows, x (IC) -> y (OC). x is quantized once; rows run in parallel (OpenMP), each y[o] by
// one thread, so the result does not depend on the thread count.
void matvec(DType t, const void* w, int OC, int IC, const float* x, float* y);

namespace ref {
// Value by value from the block formulas above.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// Dequantize the row, then the dot product in double (x not quantized).
double vec_dot(DType t, int64_t n, const void* w_row, const float* x);
}  // namespace ref

}  // namespace unmask
