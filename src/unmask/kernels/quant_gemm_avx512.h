// The AVX-512 kernels of the Linear on weights read in place: quant_gemm (quant_gemm.h) and the f16/bf16/f32 rows. Call it only when cpu_features().avx512_int8().
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "unmask/kernels/quant_gemm.h"

namespace unmask::avx512 {

// Weight rows w (nr <= kQuantGemmRows rows, row stride rb bytes) of format f, a (T rows) -> out (T, ldo), columns
// [0, nr): the rows decoded once into a panel in buf, then register tiles of up to 8 rows of x × 16 weight rows.
void quant_gemm_group(const QuantFormat& f, const uint8_t* w, size_t rb, int nr, const QuantizedActs& a, float* out,
                      int64_t ldo, std::vector<uint8_t>& buf);

// Weights a Linear repacks once (Q4_0, Q4_K): per group of 16 rows and block, the rows' codes interleaved so that
// lane r of a vector holds row r's (the order the tiles read), then their scales; the copy takes about the weight's
// size. The bytes of one group's block, or 0 where t is not repacked.
size_t packed_block_bytes(DType t);
// Rows w of type t (rows rows of nb blocks, stride rb bytes) -> dst (ceil(rows / 16) · nb · packed_block_bytes(t)
// bytes, 64-byte aligned), group after group; rows past `rows` zero.
void repack(DType t, const uint8_t* w, size_t rb, int rows, int nb, uint8_t* dst);
// quant_gemm's outputs (the definition, quant_gemm.h) for one repacked group (nr <= 16 rows) and every row of a ->
// out (a.T, ldo), columns [0, nr): register tiles of up to 8 rows of x over the group's blocks, read in order.
void packed_group(DType t, const uint8_t* panel, int nr, const QuantizedActs& a, float* out, int64_t ldo);

// Rows w (nr rows of k values of type t: F32, F16 or BF16, stride rb bytes) times x (T, k), row stride ldx ->
// out (T, ldo), columns [0, nr): each output as dot_f32 computes it (16 lane sums of FMAs, reduce16), in register
// tiles of 4 rows of x × 4 weight rows.
void lane_gemm(DType t, const uint8_t* w, size_t rb, int nr, const float* x, int64_t ldx, int T, int k, float* out,
               int64_t ldo);

}  // namespace unmask::avx512
