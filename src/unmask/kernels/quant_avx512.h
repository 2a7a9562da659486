// The AVX-512 (F, BW, VL, VNNI) kernels behind quant.h and the quantized Linear. Call them only when
// cpu_features().avx512_int8(): quant_avx512.cpp is compiled for that target whatever the project's -march.
#pragma once

#include <cstdint>

#include "unmask/kernels/quant.h"

namespace unmask::avx512 {

float dot_acts(DType t, const void* w_row, const QuantizedActs& a, int row);
// Any type of row_to_f32 (quantized, f16, bf16, f32) -> dst (n).
void row_to_f32(DType t, const void* src, float* dst, int64_t n);
// out (T, N), row stride ldo = x (T, K) · w (N, K)ᵀ in f32: 4 × 4 register tiles, each output one sequence of
// 16-lane FMAs over k and one fixed reduction, whatever T, N and the tile it falls in.
void gemm_nt_f32(const float* x, int T, const float* w, int N, int K, float* out, int64_t ldo);

}  // namespace unmask::avx512
