// The AVX-512 (F, BW, VL, VNNI) kernels behind quant.h and the quantized Linear. Call them only when
// cpu_features().avx512_int8(): quant_avx512.cpp is compiled for that target whatever the project's -march.
#pragma once

#include <cstdint>

#include "unmask/kernels/quant.h"

namespace unmask::avx512 {

float dot_acts(DType t, const void* w_row, const QuantizedActs& a, int row);
// One row of quantize_acts: x (n) in groups of `group` values -> q (n), d (n/32), s16 (n/16), the same bits as the
// portable loop (amax by max, d = amax/127, q = x · (1/d) rounded once to nearest even, exact 16-value sums).
void quantize_acts_row(const float* x, int64_t n, int group, int8_t* q, float* d, int16_t* s16);
// Σ a_i b_i over n values: 16 lane sums, one reduction.
float dot_f32(const float* a, const float* b, int n);
// Σ f16(a_i) b_i: dot_f32 of the f16 row converted on the fly (the same products and order, so the same bits).
float dot_f16_f32(const uint16_t* a, const float* b, int n);
// Any type of row_to_f32 (quantized, f16, bf16, f32) -> dst (n).
void row_to_f32(DType t, const void* src, float* dst, int64_t n);
// gemm_packed_f32 of gemm.h: tiles of 6 rows × 32 columns (12 zmm accumulators, x broadcast, two loads of b).
void gemm_packed_f32(const float* x, int64_t ldx, int T, const float* packed, int N, int K, float* out, int64_t ldo,
                     bool accumulate);

}  // namespace unmask::avx512
