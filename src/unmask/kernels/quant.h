// llama.cpp-compatible quantized blocks: the types of ggml's Q2_K ... Q8_0 files. The byte layouts and the
// reference quantization follow ggml, so rows quantized here and rows read from a GGUF file are interchangeable.
// Scales are IEEE binary16 (f16_to_f32 / f32_to_f16 of tensor/dtype.h).
//
//   Q8_0  32 values:  x = d · q,                      q int8
//   Q4_0  32 values:  x = d · (q - 8),                q 4-bit; value j in the low nibble of qs[j], j+16 in the high
//   Q4_1  32 values:  x = d · q + m,                  q 4-bit, nibbles as Q4_0
//   Q5_0  32 values:  x = d · (q - 16),               q 5-bit: low 4 bits as Q4_0, bit 4 of value j in bit j of qh
//   Q5_1  32 values:  x = d · q + m,                  q 5-bit as Q5_0
//   Q2_K 256 values: 16 sub-blocks of 16: x = d·(sc_j & 15) · q - dmin·(sc_j >> 4), q 2-bit: value 128h + 32s + l
//                    (l < 32) in bits 2s, 2s+1 of qs[32h + l]; sub-block j = value / 16
//   Q3_K 256 values: 16 sub-blocks of 16: x = d·(sc_j - 32) · (q - 4), q 3-bit: low 2 bits as Q2_K, bit 2 of value
//                    128h + 32s + l in bit 4h + s of hmask[l]; sc_j 6-bit packed in scales[12] (q3_k_scales)
//   Q4_K 256 values:  8 sub-blocks of 32: x = d·sc_j · q - dmin·m_j, q 4-bit, sc_j/m_j 6-bit packed in scales[12]
//   Q5_K 256 values:  8 sub-blocks of 32: as Q4_K with q 5-bit: bit 4 of value 64c + 32p + l in bit 2c + p of qh[l]
//   Q6_K 256 values: 16 sub-blocks of 16: x = d·sc_j · (q - 32), q 6-bit (low 4 in ql, high 2 in qh), sc_j int8
#pragma once

#include <bit>
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
struct BlockQ4_1 {
  uint16_t d, m;    // f16 scale and offset
  uint8_t qs[16];   // nibbles as Q4_0
};
struct BlockQ5_0 {
  uint16_t d;       // f16 scale
  uint8_t qh[4];    // bit j (little-endian 32-bit word): bit 4 of value j
  uint8_t qs[16];   // low 4 bits, nibbles as Q4_0
};
struct BlockQ5_1 {
  uint16_t d, m;    // f16 scale and offset
  uint8_t qh[4];    // as Q5_0
  uint8_t qs[16];   // as Q5_0
};
struct BlockQ2_K {
  uint8_t scales[16];  // per sub-block of 16: scale (low nibble) and min (high nibble)
  uint8_t qs[64];      // 2-bit codes, four per byte
  uint16_t d;          // f16 super-scale of the scales
  uint16_t dmin;       // f16 super-scale of the mins
};
struct BlockQ3_K {
  uint8_t hmask[32];   // bit 2 of the codes
  uint8_t qs[64];      // bits 0-1 of the codes, as Q2_K
  uint8_t scales[12];  // 16 six-bit scales (q3_k_scales)
  uint16_t d;          // f16 super-scale
};
// Q3_K's 16 six-bit scales, offset by 32 (so -32..31): scale j takes its low 4 bits from the low (j < 8) or high
// (j >= 8) nibble of byte j % 8, and its top 2 bits from bits 2(j / 4), 2(j / 4) + 1 of byte 8 + j % 4.
inline void q3_k_scales(const uint8_t* s, int8_t* sc) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    sc[j] = int8_t((lo | (hi << 4)) - 32);
  }
}

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

struct BlockQ5_K {
  uint16_t d;          // as Q4_K
  uint16_t dmin;
  uint8_t scales[12];  // as Q4_K (scale_min_k4)
  uint8_t qh[32];      // bit 4 of the codes
  uint8_t qs[128];     // low 4 bits, as Q4_K
};

struct BlockQ6_K {
  uint8_t ql[128];    // low 4 bits
  uint8_t qh[64];     // high 2 bits
  int8_t scales[16];  // one per 16 values
  uint16_t d;         // f16 super-scale
};
static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// Round to nearest, ties to even, for |v| < 2^22 (ggml's nearest_int: the float trick, not lrintf).
inline int nearest_int(float v) {
  const float f = v + 12582912.f;
  return int(std::bit_cast<uint32_t>(f) & 0x007fffffu) - 0x00400000;
}

// True for the block types above.
bool is_quant_dtype(DType t);

// One block of any quantized type as integers, for integer products with int8 activations: value i of sub-block j
// (`sub` values each) is  x_i = d · sc_j · (q_i - off) - dmin · m_j,  q_i its unsigned code. Q8_0 codes are
// stored + 128 (off 128); Q4_1/Q5_1's offset m is one min of -m (m_0 = 1, dmin = -m).
struct IntBlock {
  uint8_t q[256];   // codes in value order (block_size of them)
  int8_t sc[16];    // per sub-block: integer scale
  int8_t m[16];     // per sub-block: integer min
  int sub = 32;     // values per sub-block: 16 or 32
  int off = 0;      // code offset
  float d = 0, dmin = 0;
};
void unpack_block(DType t, const void* block, IntBlock& out);

// Activations quantized for the integer dot products with rows of type t: T rows of n values as int8 with one
// scale per group (32 values for the 32-value blocks, 256 for the K-quants, as ggml's Q8_0/Q8_K activations; the
// scale is stored once per 32 values either way) and the sum of every 16 codes (offsets and mins). The
// buffers grow to the largest call and are reused: no allocation once warm.
struct QuantizedActs {
  int T = 0, n = 0;
  std::vector<int8_t> q;       // (T, n)
  std::vector<float> d;        // (T, n/32)
  std::vector<int16_t> sum16;  // (T, n/16)
  // The value the dot products see for x[t][k]: d · q.
  float value(int t, int64_t k) const { return d[size_t(t) * size_t(n / 32) + size_t(k / 32)] * float(q[size_t(t) * size_t(n) + size_t(k)]); }
};
// Values per activation scale for weights of type t: 32 (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) or 256 (the K-quants).
int act_group(DType t);
// x (T, n) -> a; n a multiple of act_group(t) (checked). q = x · (1/d) rounded once (the product unrounded) to
// nearest, ties to even. Rows in parallel (OpenMP), each by one thread; AVX-512 where the CPU has it, the same bits.
void quantize_acts(DType t, const float* x, int T, int64_t n, QuantizedActs& a);
// Dot product of one quantized row (a.n values) with row `row` of a (quantized for t): Σ_blocks of integer dots
// times the block scales, accumulated in f32. AVX-512 VNNI where the CPU has it (cpu.h), portable C++ otherwise.
float dot_acts(DType t, const void* w_row, const QuantizedActs& a, int row);

// src: n/block_size blocks -> dst (n). n a multiple of the block size (checked).
void dequantize_row(DType t, const void* src, float* dst, int64_t n);
// A row of any type (quantized, f16, bf16, f32) -> dst (n) in f32, exactly as ref::dequantize_row / to_f32 give it.
void row_to_f32(DType t, const void* src, float* dst, int64_t n);
// The reference quantization of ggml (quantize_row_*_ref, what llama-quantize writes without an importance
// matrix): src (n) -> dst, n/block_size blocks. In quant_quantize.cpp.
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
