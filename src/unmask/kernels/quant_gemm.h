// The quantized GEMM on int8 activations: out (T, OC) = x̂ (T, IC) · Ŵᵀ for weights of a block type read in place,
// every output computed by one arithmetic whatever T, whatever the tile it falls in and whatever the thread count
// (batch-invariant: a row alone and the same row among 300 give the same bits; quant_dot is its one-row case).
//
// The arithmetic of one output (t, o), blocks b in order (the definition; every path computes exactly this):
//   I_b = Σ_j sc_j · Σ_{k ∈ sub-block j} c_k · q_k  +  Σ_g z_g · S_g      (exact int32)
//   J_b = Σ_g m_g · S_g                                                  (exact int32; types with mins only)
//   acc = fma(float(I_b), dx_b · d_b, acc);   then, types with mins:  acc = fma(float(J_b), dx_b · e_b, acc)
// where the block decodes to unsigned codes c_k, integer sub-block scales sc_j, integer zero points z_g and mins m_g
// per 16 values, and float scales d_b, e_b (QuantBlock below); x̂ = dx · q (quantize_acts) with S_g the sum of the
// 16 codes q of group g. Q8_0: c = q + 128, z = -128; Q4_0 / Q5_0: c = q, z = -8 / -16; Q4_1 / Q5_1: c = q,
// m = 1, e = +m (the block's offset); Q2_K / Q4_K / Q5_K: sc_j, m_j of their sub-blocks, e = -dmin; Q3_K / Q6_K:
// c = q, z_g = -4·sc_g / -32·sc_g (sc signed). The integer sums are exact (|I_b| < 2^31: at most 2^26 for Q5_K), so the bits
// depend only on this sequence of f32 operations, which the AVX-512 VNNI kernel (16 weight rows per vector, the
// dot products of 4 codes by dpbusd) and the portable C++ one perform alike: the two give the same bits.
//
// Error against f32 activations (ref::linear_forward on the dequantized weights and x itself):
//   x̂_k = dx·q_k with dx = max|x over its group| / 127 and q_k = round(x_k / dx): |x_k - x̂_k| <= dx/2 (1 + 2^-23)
//   (one rounding of x_k·(1/dx)), so the activations add at most Σ_k |ŵ_k| · dx(k)/2 · (1 + 1e-6);
//   the f32 part rounds float(I_b) (|I_b| may pass 2^24), dx·d, and each fma: per block at most 3 roundings of a
//   term of size <= Σ_{k in b} |terms_k| |x̂_k| plus the running sum's, so against the same product on x̂
//   |out - exact(x̂)| <= (2·nb + 3)·eps·Σ_k terms_k |x̂_k|   (nb = blocks per row, terms_k = |ŵ_k|, types with mins: |d·sc·q| + |dmin·m|).
#pragma once

#include <cstdint>
#include <vector>

#include "unmask/kernels/quant.h"

namespace unmask {

// One block decoded for the integer GEMM (see above); values in their row order.
struct QuantBlock {
  uint8_t c[256];  // codes
  int32_t sc[16];  // sub-block scales (types with them)
  int16_t z[16];   // zero point per 16 values (types with them)
  int16_t m[16];   // min per 16 values (types with mins)
  float d = 0, e = 0;
};

// What the GEMM needs to know of a type: adding a type is a decode function and one row of this table.
struct QuantFormat {
  DType type;
  int block;    // values per block: 32 or 256
  int nsub;     // sub-blocks with their own integer scale (1: none)
  bool has_z;   // zero points
  bool has_m;   // mins with the second float scale e
  void (*decode)(const void* block, QuantBlock& out);
};

// The format of t, or null where t has no GEMM kernel (its Linear falls back to dot_acts per output).
const QuantFormat* quant_format(DType t);

// Weight rows per group: one 512-bit vector of int32 holds an output of each (the AVX-512 kernel's tile width).
constexpr int kQuantGemmRows = 16;
// Rows of x up to which the K types (Q2_K, Q3_K, Q5_K, Q6_K) are read straight from the blocks, row of x by row
// (decode: no panel to build), computing the definition above as the panel kernel does above it. A Linear repacks
// its Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q4_K weights on its first call into 16-row groups (avx512::repack) and
// computes the definition from those at every T; the portable path computes it from the blocks. So every type's
// outputs are the same at every T.
constexpr int kQuantRowsDirect = 4;

// Whether a Linear repacks weights of type t (on AVX-512 VNNI; avx512::repack).
bool quant_repacks(DType t);

// One thread's scratch for quant_gemm_rows: grows to the largest call, reused.
struct QuantScratch {
  std::vector<uint8_t> panel;  // decoded weight rows (AVX-512) or the K types' block sums (decode)
  std::vector<float> acc;      // the portable path's running sums
};

// Output columns [o0, o1) of out (a.T, ldo) from rows [o0, o1) of w (rows of a.n values of type t, quant_format(t)
// not null): o0 a multiple of kQuantGemmRows, o1 - o0 <= kQuantGemmRows. One thread computes them; a caller splits
// the groups of a weight across its threads (Linear: all the parts of a call in one OpenMP region).
void quant_gemm_rows(DType t, const void* w, int o0, int o1, const QuantizedActs& a, float* out, int64_t ldo,
                     QuantScratch& scratch);
// The one-row case: row `row` of a times one weight row (the same bits as quant_gemm_rows' output for it).
float quant_dot(DType t, const void* w_row, const QuantizedActs& a, int row);

}  // namespace unmask
