// The AVX-512 (F, BW, VL, VNNI) kernels behind quant.h and the quantized Linear. Call them only when
// cpu_features().avx512_int8(): quant_avx512.cpp is compiled for that target whatever the project's -march.
#pragma once

#include <cstdint>
#include <vector>

#include "unmask/kernels/quant.h"

namespace unmask::avx512 {

float dot_acts(DType t, const void* w_row, const QuantizedActs& a, int row);
// quant_gemm's outputs (quant_gemm.h: the same bits) for row `row` of a and weight rows w (nr <= 16 rows of a.n
// values of a K type: Q2_K … Q6_K, stride rb bytes) -> out (nr); buf: scratch, grown as needed.
void quant_rows(DType t, const uint8_t* w, size_t rb, int nr, const QuantizedActs& a, int row, float* out,
                std::vector<uint8_t>& buf);
// One row of quantize_acts: x (n) in groups of `group` values -> q (n), d (n/32), s16 (n/16), the same bits as the
// portable loop (amax by max, d = amax/127, q = x · (1/d) rounded once to nearest even, exact 16-value sums).
void quantize_acts_row(const float* x, int64_t n, int group, int8_t* q, float* d, int16_t* s16);
// Σ a_i b_i over n values: 16 lane sums, one reduction.
float dot_f32(const float* a, const float* b, int n);
// Any type of row_to_f32 (quantized, f16, bf16, f32) -> dst (n).
void row_to_f32(DType t, const void* src, float* dst, int64_t n);

}  // namespace unmask::avx512
