// AVX-512 kernels for quantized rows: VNNI integer dots on int8 activations, dequantization to f32, and the f32
// register-tiled product the quantized Linear runs on dequantized panels. The target pragma below compiles only
// these functions for AVX-512 (F, BW, DQ, VL, VNNI) and F16C; the headers above it keep the project's target, so
// no inline function shared with the portable code is ever emitted with AVX-512 instructions.
#include "unmask/kernels/quant_avx512.h"

#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "unmask/kernels/quant.h"

#ifdef __clang__  // clang's form of the GCC pragma: every function below gets the same target
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c,fma")
// g++ 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized (GCC PR105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace unmask::avx512 {
namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }

inline float reduce8(__m256 v) { return _mm512_reduce_add_ps(_mm512_zextps256_ps512(v)); }

// The activations of one row.
struct ActRow {
  const int8_t* q;    // n
  const float* d;     // n/32
  const int16_t* s16; // n/16
};

ActRow act_row(const QuantizedActs& a, int row) {
  return {a.q.data() + size_t(row) * size_t(a.n), a.d.data() + size_t(row) * size_t(a.n / 32),
          a.sum16.data() + size_t(row) * size_t(a.n / 16)};
}

// Q8_0 · x, one block in a 256-bit half: |w| (unsigned) times x with w's sign, so that dpbusd takes it.
inline __m512 q8_block_pair(__m512i wq, __m512i xv, __m512 scale, __m512 acc) {
  const __m512i xs = _mm512_mask_sub_epi8(xv, _mm512_movepi8_mask(wq), _mm512_setzero_si512(), xv);
  const __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(wq), xs);
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), scale, acc);
}

float dot_q8_0(const BlockQ8_0* w, ActRow x, int64_t nb) {
  __m512 acc = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m512i wq = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)w[b].qs)),
                                          _mm256_loadu_si256((const __m256i*)w[b + 1].qs), 1);
    const __m512 s = _mm512_insertf32x8(_mm512_set1_ps(half(w[b].d) * x.d[b]),
                                        _mm256_set1_ps(half(w[b + 1].d) * x.d[b + 1]), 1);
    acc = q8_block_pair(wq, _mm512_loadu_si512(x.q + 32 * b), s, acc);
  }
  if (b < nb) {
    const __m512i wq = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i*)w[b].qs));
    const __m512i xv = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i*)(x.q + 32 * b)));
    acc = q8_block_pair(wq, xv, _mm512_zextps256_ps512(_mm256_set1_ps(half(w[b].d) * x.d[b])), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

// Q4_0 block b's 32 codes (0..15), in value order.
inline __m256i q4_0_codes(const BlockQ4_0& blk) {
  const __m128i q = _mm_loadu_si128((const __m128i*)blk.qs);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0xF));
}

// Σ (q - 8) x = Σ q x - 8 Σ x per block, in int32 (the offset taken from lane 0), scaled into the accumulator.
inline __m256 q4_0_step(const BlockQ4_0& w, ActRow x, int64_t b, __m256 acc) {
  const __m256i dp = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q4_0_codes(w),
                                         _mm256_loadu_si256((const __m256i*)(x.q + 32 * b)));
  const int32_t off = 8 * (int32_t(x.s16[2 * b]) + x.s16[2 * b + 1]);
  const __m256i v = _mm256_sub_epi32(dp, _mm256_setr_epi32(off, 0, 0, 0, 0, 0, 0, 0));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_set1_ps(half(w.d) * x.d[b]), acc);
}

// Blocks alternate between two accumulators: one chain of dependent FMAs would hold each block for its latency.
float dot_q4_0(const BlockQ4_0* w, ActRow x, int64_t nb) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) acc0 = q4_0_step(w[b], x, b, acc0), acc1 = q4_0_step(w[b + 1], x, b + 1, acc1);
  if (b < nb) acc0 = q4_0_step(w[b], x, b, acc0);
  return reduce8(_mm256_add_ps(acc0, acc1));
}

// Q4_K's 8 six-bit scales and 8 mins (scale_min_k4) as 8 bytes each, unpacked a 32-bit word at a time.
inline void k4_scales(const uint8_t* s, uint64_t& sc, uint64_t& m) {
  uint32_t u0, u1, u2;
  std::memcpy(&u0, s, 4), std::memcpy(&u1, s + 4, 4), std::memcpy(&u2, s + 8, 4);
  const uint32_t lo6 = 0x3f3f3f3f, lo4 = 0x0f0f0f0f, lo2 = 0x03030303;
  const uint32_t sc_hi = (u2 & lo4) | (((u0 >> 6) & lo2) << 4);
  const uint32_t m_hi = ((u2 >> 4) & lo4) | (((u1 >> 6) & lo2) << 4);
  sc = (u0 & lo6) | uint64_t(sc_hi) << 32;
  m = (u1 & lo6) | uint64_t(m_hi) << 32;
}

// Per 256-value block: 4 chunks of 64 (low nibbles = sub-block 2c, high = 2c+1); maddubs gives pair sums in
// int16 (|15·127·2| fits), dpwssd multiplies them by the sub-block scale and accumulates in int32; the mins take
// Σ m_j · (sum of the activation codes of sub-block j) from the precomputed sums.
float dot_q4_k(const BlockQ4_K* w, ActRow x, int64_t nb) {
  const __m512i m4 = _mm512_set1_epi8(0xF);
  __m512i idx[4];
  for (int c = 0; c < 4; ++c)
    idx[c] = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(short(2 * c)), _mm512_set1_epi16(short(2 * c + 1)));
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_min = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    uint64_t sc8, m8;
    k4_scales(w[b].scales, sc8, m8);
    const __m512i scv = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc8))));
    __m512i acc_i = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = _mm256_loadu_si256((const __m256i*)(w[b].qs + 32 * c));
      const __m512i qq = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1), m4);
      const __m512i p16 = _mm512_maddubs_epi16(qq, _mm512_loadu_si512(x.q + 256 * b + 64 * c));
      acc_i = _mm512_dpwssd_epi32(acc_i, p16, _mm512_permutexvar_epi16(idx[c], scv));
    }
    const float dx = x.d[8 * b];
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc_i), _mm512_set1_ps(dx * half(w[b].d)), acc);
    const __m128i mv = _mm_cvtsi64_si128(int64_t(m8));
    const __m256i mins = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mv, mv)),
                                           _mm256_loadu_si256((const __m256i*)(x.s16 + 16 * b)));
    acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins), _mm256_set1_ps(dx * half(w[b].dmin)), acc_min);
  }
  return _mm512_reduce_add_ps(acc) - reduce8(acc_min);
}

// The 64 six-bit codes (0..63) of Q6_K chunk (h, p): values 128h + 64p + (0..63), in order.
inline __m512i q6_codes(const BlockQ6_K& blk, int h, int p) {
  const __m512i ql = _mm512_loadu_si512(blk.ql + 64 * h);
  const __m256i qh256 = _mm256_loadu_si256((const __m256i*)(blk.qh + 32 * h));
  const __m512i qh = _mm512_inserti64x4(_mm512_castsi256_si512(qh256), qh256, 1);
  const __m512i shift = _mm512_inserti64x4(_mm512_set1_epi16(short(4 * p)), _mm256_set1_epi16(short(4 * p + 2)), 1);
  const __m512i lo4 = _mm512_and_si512(p == 0 ? ql : _mm512_srli_epi16(ql, 4), _mm512_set1_epi8(0xF));
  const __m512i hi2 = _mm512_and_si512(_mm512_srlv_epi16(qh, shift), _mm512_set1_epi8(3));
  return _mm512_or_si512(lo4, _mm512_slli_epi16(hi2, 4));
}

// Σ sc_j · Σ (q - 32) x over 16-value sub-blocks: maddubs pair sums (|63·127·2| fits int16), dpwssd by the scale,
// and the offset 32 · Σ sc_j · (sum of the codes of sub-block j) from the precomputed sums.
float dot_q6_k(const BlockQ6_K* w, ActRow x, int64_t nb) {
  __m512i idx[4];  // chunk c: lanes 8g .. 8g+7 (16 values) take scale 4c + g
  for (int c = 0; c < 4; ++c)
    idx[c] = _mm512_add_epi16(_mm512_set1_epi16(short(4 * c)),
                              _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18,
                                                                 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3,
                                                                 2, 1, 0), 3));
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_off = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)w[b].scales));
    const __m512i scv = _mm512_zextsi256_si512(sc16);
    __m512i acc_i = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const __m512i p16 = _mm512_maddubs_epi16(q6_codes(w[b], c / 2, c % 2), _mm512_loadu_si512(x.q + 256 * b + 64 * c));
      acc_i = _mm512_dpwssd_epi32(acc_i, p16, _mm512_permutexvar_epi16(idx[c], scv));
    }
    const float dd = x.d[8 * b] * half(w[b].d);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc_i), _mm512_set1_ps(dd), acc);
    const __m256i off = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i*)(x.s16 + 16 * b)));
    acc_off = _mm256_fmadd_ps(_mm256_cvtepi32_ps(off), _mm256_set1_ps(32 * dd), acc_off);
  }
  return _mm512_reduce_add_ps(acc) - reduce8(acc_off);
}

// ---- Q4_1, Q5_0, Q5_1: 32-value blocks, two per 512-bit vector ----

// The 32 codes of a 32-value block, in value order: nibbles (value j low, j + 16 high), bit 4 from qh for 5 bits.
inline __m256i codes_32(const uint8_t* qs, const uint8_t* qh) {
  const __m128i q = _mm_loadu_si128((const __m128i*)qs);
  const __m256i lo = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0xF));
  if (!qh) return lo;
  uint32_t h;
  std::memcpy(&h, qh, 4);
  return _mm256_or_si256(lo, _mm256_maskz_mov_epi8(__mmask32(h), _mm256_set1_epi8(0x10)));
}

template <class Block>
inline __m256i block_codes(const Block& b) {
  if constexpr (std::is_same_v<Block, BlockQ4_1>) return codes_32(b.qs, nullptr);
  else return codes_32(b.qs, b.qh);
}

// Σ_b dx_b (d_b (Σ q·x - off Σx) + m_b Σx): per block an exact int32 dot (dpbusd; the offset of Q5_0 taken from
// its first lane), scaled in f32; the offsets m of Q4_1/Q5_1 (x = d·q + m) summed apart.
template <class Block>
float dot_32(const Block* w, ActRow x, int64_t nb) {
  constexpr bool kMin = !std::is_same_v<Block, BlockQ5_0>;
  constexpr int kOff = kMin ? 0 : 16;
  __m512 acc = _mm512_setzero_ps();
  float acc_m = 0;
  for (int64_t b = 0; b < nb; b += 2) {
    const bool two = b + 1 < nb;
    const __m256i c1 = two ? block_codes(w[b + 1]) : _mm256_setzero_si256();
    const __m512i codes = _mm512_inserti64x4(_mm512_castsi256_si512(block_codes(w[b])), c1, 1);
    const __m512i xv = _mm512_maskz_loadu_epi8(two ? ~__mmask64(0) : __mmask64(0xFFFFFFFFu), x.q + 32 * b);
    int32_t xs[2] = {x.s16[2 * b] + x.s16[2 * b + 1], two ? x.s16[2 * b + 2] + x.s16[2 * b + 3] : 0};
    __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, xv);
    if (kOff)
      dp = _mm512_sub_epi32(dp, _mm512_setr_epi32(kOff * xs[0], 0, 0, 0, 0, 0, 0, 0, kOff * xs[1], 0, 0, 0, 0, 0, 0, 0));
    const float s0 = half(w[b].d) * x.d[b], s1 = two ? half(w[b + 1].d) * x.d[b + 1] : 0.f;
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1), acc);
    if constexpr (kMin) {
      acc_m += half(w[b].m) * x.d[b] * float(xs[0]);
      if (two) acc_m += half(w[b + 1].m) * x.d[b + 1] * float(xs[1]);
    }
  }
  return _mm512_reduce_add_ps(acc) + acc_m;
}

// ---- Q2_K, Q3_K, Q5_K: 256-value blocks, 4 chunks of 64 values ----

// A K block for the integer dot: per 16 values an int16 scale (sc16) and min (m16), a code offset, and the codes
// of chunk c (values 64c .. 64c+63) from codes(c).
struct KScales {
  __m256i sc16, m16;
  int off;
  float d, dmin;
};

// Q2_K/Q3_K's low 2 bits of chunk c: values 128h + 64p + (0..63) are bits 4p, 4p+2 of qs[32h .. 32h+31].
inline __m512i low2_codes(const uint8_t* qs, int c) {
  const __m256i q = _mm256_loadu_si256((const __m256i*)(qs + 32 * (c / 2)));
  const __m512i shift = _mm512_inserti64x4(_mm512_set1_epi16(short(4 * (c % 2))), _mm256_set1_epi16(short(4 * (c % 2) + 2)), 1);
  return _mm512_and_si512(_mm512_srlv_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(q), q, 1), shift), _mm512_set1_epi8(3));
}

// Bit s0 (first 32 values) and s0 + 1 (next 32) of bits[0 .. 31], moved to bit `to`.
inline __m512i high_bits(const uint8_t* bits, int s0, int to) {
  const __m256i h = _mm256_loadu_si256((const __m256i*)bits);
  const __m512i shift = _mm512_inserti64x4(_mm512_set1_epi16(short(s0)), _mm256_set1_epi16(short(s0 + 1)), 1);
  const __m512i b = _mm512_and_si512(_mm512_srlv_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(h), h, 1), shift),
                                     _mm512_set1_epi8(1));
  return _mm512_slli_epi16(b, to);
}

inline __m512i q2_k_codes(const BlockQ2_K& b, int c) { return low2_codes(b.qs, c); }
inline __m512i q3_k_codes(const BlockQ3_K& b, int c) {
  return _mm512_or_si512(low2_codes(b.qs, c), high_bits(b.hmask, 2 * c, 2));  // chunk c: bits 4h + 2p = 2c
}
// Q5_K chunk c: the low (values 64c .. +31) and high nibbles of qs[32c ..], bit 4 from bits 2c, 2c+1 of qh.
inline __m512i q5_k_codes(const BlockQ5_K& b, int c) {
  const __m256i q = _mm256_loadu_si256((const __m256i*)(b.qs + 32 * c));
  const __m512i lo = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q), _mm256_srli_epi16(q, 4), 1),
                                      _mm512_set1_epi8(0xF));
  return _mm512_or_si512(lo, high_bits(b.qh, 2 * c, 4));
}

inline KScales q2_k_scales(const BlockQ2_K& b) {
  const __m128i s = _mm_loadu_si128((const __m128i*)b.scales);
  return {_mm256_cvtepu8_epi16(_mm_and_si128(s, _mm_set1_epi8(0xF))),
          _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0xF))), 0, half(b.d), half(b.dmin)};
}
// q3_k_scales (quant.h) on one vector: the low nibbles of bytes 0-7 then their high nibbles, and the two bits of
// byte 8 + j % 4 at 2 (j / 4) (a 32-bit shift per group of 4 keeps them in their byte), minus 32.
inline KScales q3_k_scales_vec(const BlockQ3_K& b) {
  uint64_t lo8;
  uint32_t hi4;
  std::memcpy(&lo8, b.scales, 8), std::memcpy(&hi4, b.scales + 8, 4);
  const __m128i v = _mm_cvtsi64_si128(int64_t(lo8)), m4 = _mm_set1_epi8(0xF);
  const __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
  const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(int32_t(hi4)), _mm_setr_epi32(0, 2, 4, 6)),
                                   _mm_set1_epi8(3));
  const __m128i sc = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
  return {_mm256_cvtepi8_epi16(sc), _mm256_setzero_si256(), 4, half(b.d), 0.f};
}
// Q5_K's 8 scales and mins (k4_scales), each repeated for the two 16-value halves of its sub-block.
inline KScales q5_k_scales(const BlockQ5_K& b) {
  uint64_t sc8, m8;
  k4_scales(b.scales, sc8, m8);
  const __m128i s = _mm_cvtsi64_si128(int64_t(sc8)), m = _mm_cvtsi64_si128(int64_t(m8));
  return {_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(s, s)), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m)), 0, half(b.d),
          half(b.dmin)};
}

// Chunk c's int16 lanes 8g .. 8g+7 (16 values) take the scale of 16-value group 4c + g.
inline __m512i group16_index(int c) {
  return _mm512_add_epi16(_mm512_set1_epi16(short(4 * c)),
                          _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18,
                                                             17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2,
                                                             1, 0), 3));
}

// Σ_b dx_b (d_b Σ_g sc_g (Σ q·x - off S_g) - dmin_b Σ_g m_g S_g) over 16-value groups g with code sums S_g:
// maddubs pair sums (|31·127·2| fits int16), dpwssd by the group's scale, the offset in int32 (exact), the mins
// apart in f32.
template <class Block, __m512i (*Codes)(const Block&, int), KScales (*Scales)(const Block&)>
float dot_k(const Block* w, ActRow x, int64_t nb) {
  __m512i idx[4];
  for (int c = 0; c < 4; ++c) idx[c] = group16_index(c);
  __m512 acc = _mm512_setzero_ps();
  __m256 acc_min = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const KScales k = Scales(w[b]);
    const __m512i scv = _mm512_zextsi256_si512(k.sc16);
    const __m256i s16 = _mm256_loadu_si256((const __m256i*)(x.s16 + 16 * b));
    __m512i acc_i = _mm512_zextsi256_si512(_mm256_mullo_epi32(_mm256_set1_epi32(-k.off), _mm256_madd_epi16(k.sc16, s16)));
    for (int c = 0; c < 4; ++c) {
      const __m512i p16 = _mm512_maddubs_epi16(Codes(w[b], c), _mm512_loadu_si512(x.q + 256 * b + 64 * c));
      acc_i = _mm512_dpwssd_epi32(acc_i, p16, _mm512_permutexvar_epi16(idx[c], scv));
    }
    const float dx = x.d[8 * b];
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc_i), _mm512_set1_ps(dx * k.d), acc);
    if (k.dmin != 0)
      acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(k.m16, s16)), _mm256_set1_ps(dx * k.dmin), acc_min);
  }
  return _mm512_reduce_add_ps(acc) - reduce8(acc_min);
}

// ---- quant_gemm's arithmetic (quant_gemm.h) for one row of x and up to 16 weight rows of a K type in place ----
// First the exact integer dots I_b and J_b of every block, row after row (the weights read as one stream), from
// the dot kernels' integer partials (summed across lanes: exact in int32); then the definition's float steps of
// each block for the 16 rows at once, lane r = weight row r. (The 32-value types measured 0.6-0.8x their row dots
// this way, whose two-block vectors need no sum across lanes: a Linear repacks them, avx512::repack.)

// Q2_K … Q6_K: a block's integer partials, I (16 lanes) and J (8 lanes, types with mins).
template <DType T>
inline void ints_256(const uint8_t* blk, const int8_t* xq, const int16_t* xs, __m512i& I, __m256i& J) {
  const __m256i s16 = _mm256_loadu_si256((const __m256i*)xs);
  if constexpr (T == DType::Q4_K || T == DType::Q6_K) {
    __m512i idx[4], scv;
    __m256i sc16 = _mm256_setzero_si256();
    if constexpr (T == DType::Q4_K) {
      const auto& w = *reinterpret_cast<const BlockQ4_K*>(blk);
      uint64_t sc8, m8;
      k4_scales(w.scales, sc8, m8);
      scv = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(int64_t(sc8))));
      for (int c = 0; c < 4; ++c)
        idx[c] = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16(short(2 * c)), _mm512_set1_epi16(short(2 * c + 1)));
      const __m128i mv = _mm_cvtsi64_si128(int64_t(m8));
      J = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mv, mv)), s16);
    } else {
      sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)reinterpret_cast<const BlockQ6_K*>(blk)->scales));
      scv = _mm512_zextsi256_si512(sc16);
      for (int c = 0; c < 4; ++c) idx[c] = group16_index(c);
    }
    I = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      __m512i q;
      if constexpr (T == DType::Q4_K) {
        const __m256i v = _mm256_loadu_si256((const __m256i*)(reinterpret_cast<const BlockQ4_K*>(blk)->qs + 32 * c));
        q = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1),
                             _mm512_set1_epi8(0xF));
      } else {
        q = q6_codes(*reinterpret_cast<const BlockQ6_K*>(blk), c / 2, c % 2);
      }
      I = _mm512_dpwssd_epi32(I, _mm512_maddubs_epi16(q, _mm512_loadu_si512(xq + 64 * c)),
                              _mm512_permutexvar_epi16(idx[c], scv));
    }
    if constexpr (T == DType::Q6_K)  // zero points -32 · sc_g
      I = _mm512_sub_epi32(I, _mm512_zextsi256_si512(_mm256_slli_epi32(_mm256_madd_epi16(sc16, s16), 5)));
  } else {
    KScales k;
    if constexpr (T == DType::Q2_K) k = q2_k_scales(*reinterpret_cast<const BlockQ2_K*>(blk));
    else if constexpr (T == DType::Q3_K) k = q3_k_scales_vec(*reinterpret_cast<const BlockQ3_K*>(blk));
    else k = q5_k_scales(*reinterpret_cast<const BlockQ5_K*>(blk));
    const __m512i scv = _mm512_zextsi256_si512(k.sc16);
    I = _mm512_zextsi256_si512(_mm256_mullo_epi32(_mm256_set1_epi32(-k.off), _mm256_madd_epi16(k.sc16, s16)));
    for (int c = 0; c < 4; ++c) {
      __m512i q;
      if constexpr (T == DType::Q2_K) q = q2_k_codes(*reinterpret_cast<const BlockQ2_K*>(blk), c);
      else if constexpr (T == DType::Q3_K) q = q3_k_codes(*reinterpret_cast<const BlockQ3_K*>(blk), c);
      else q = q5_k_codes(*reinterpret_cast<const BlockQ5_K*>(blk), c);
      I = _mm512_dpwssd_epi32(I, _mm512_maddubs_epi16(q, _mm512_loadu_si512(xq + 64 * c)),
                              _mm512_permutexvar_epi16(group16_index(c), scv));
    }
    J = _mm256_madd_epi16(k.m16, s16);
  }
}

// Where a K type keeps its f16 scales: d, and dmin (types with mins; e = -dmin).
struct Scales16 {
  int d, e;
  bool has_e;
};
constexpr Scales16 scales_of(DType t) {
  switch (t) {
    case DType::Q2_K: return {int(offsetof(BlockQ2_K, d)), int(offsetof(BlockQ2_K, dmin)), true};
    case DType::Q3_K: return {int(offsetof(BlockQ3_K, d)), 0, false};
    case DType::Q6_K: return {int(offsetof(BlockQ6_K, d)), 0, false};
    default: return {int(offsetof(BlockQ4_K, d)), int(offsetof(BlockQ4_K, dmin)), true};  // Q4_K, Q5_K
  }
}

template <DType T>
void rows16(const uint8_t* w, size_t rb, int nr, ActRow x, int n, float* out, std::vector<uint8_t>& buf) {
  constexpr Scales16 S = scales_of(T);
  const int bb = dtype_info(T).block_bytes, nb = n / 256;
  // Per row r and block b at r·nb + b: I_b, J_b (int32), d_b, e_b (f32).
  const size_t cells = 16 * size_t(nb), need = cells * 4 * 4;
  if (buf.size() < need) buf.resize(need);
  int32_t* Ib = reinterpret_cast<int32_t*>(buf.data());
  int32_t* Jb = Ib + cells;
  float* Db = reinterpret_cast<float*>(Jb + cells);
  float* Eb = Db + cells;
  for (int r = 0; r < nr; ++r) {  // the exact integer parts, row after row: the weights read as one stream
    const uint8_t* row = w + size_t(r) * rb;
    for (int b = 0; b < nb; ++b) {
      const uint8_t* blk = row + size_t(b) * size_t(bb);
      const size_t at = size_t(r) * size_t(nb) + size_t(b);
      __m512i vi;
      __m256i vj;
      ints_256<T>(blk, x.q + 256 * b, x.s16 + 16 * b, vi, vj);
      Ib[at] = _mm512_reduce_add_epi32(vi);
      uint16_t h;
      std::memcpy(&h, blk + S.d, 2), Db[at] = _cvtsh_ss(h);
      if constexpr (S.has_e) {
        Jb[at] = _mm512_reduce_add_epi32(_mm512_zextsi256_si512(vj));
        std::memcpy(&h, blk + S.e, 2), Eb[at] = -_cvtsh_ss(h);  // e = -dmin
      }
    }
  }
  // The definition's float steps, block by block, 16 rows at once (lane r = row r, gathered; rows past nr 0).
  const __mmask16 live = __mmask16((1u << nr) - 1u);
  const __m512i at = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                        _mm512_set1_epi32(nb));
  __m512 acc = _mm512_setzero_ps();
  for (int b = 0; b < nb; ++b) {
    const __m512 dx = _mm512_set1_ps(x.d[8 * b]);
    const __m512i I = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, at, Ib + b, 4);
    const __m512 d = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, at, Db + b, 4);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), _mm512_mul_ps(dx, d), acc);
    if constexpr (S.has_e) {
      const __m512i J = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, at, Jb + b, 4);
      const __m512 e = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, at, Eb + b, 4);
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(J), _mm512_mul_ps(dx, e), acc);
    }
  }
  _mm512_mask_storeu_ps(out, live, acc);
}

// ---- rows to f32 (the same products as ref::dequantize_row, so the same bits) ----

void q8_0_to_f32(const BlockQ8_0* w, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 d = _mm512_set1_ps(half(w[b].d));
    for (int k = 0; k < 2; ++k) {
      const __m128i q = _mm_loadu_si128((const __m128i*)(w[b].qs + 16 * k));
      _mm512_storeu_ps(y + 32 * b + 16 * k, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))));
    }
  }
}

void q4_0_to_f32(const BlockQ4_0* w, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 d = _mm512_set1_ps(half(w[b].d));
    const __m256i q = _mm256_sub_epi8(q4_0_codes(w[b]), _mm256_set1_epi8(8));
    for (int k = 0; k < 2; ++k) {
      const __m128i h = k == 0 ? _mm256_castsi256_si128(q) : _mm256_extracti128_si256(q, 1);
      _mm512_storeu_ps(y + 32 * b + 16 * k, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(h))));
    }
  }
}

void q4_k_to_f32(const BlockQ4_K* w, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = half(w[b].d), dmin = half(w[b].dmin);
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      scale_min_k4(j, w[b].scales, sc, m);
      const __m512 d1 = _mm512_set1_ps(d * float(sc)), m1 = _mm512_set1_ps(dmin * float(m));
      for (int k = 0; k < 2; ++k) {
        __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(w[b].qs + 32 * (j / 2) + 16 * k)));
        q = (j % 2 == 0) ? _mm512_and_si512(q, _mm512_set1_epi32(0xF)) : _mm512_srli_epi32(q, 4);
        _mm512_storeu_ps(y + 256 * b + 32 * j + 16 * k, _mm512_sub_ps(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(q)), m1));
      }
    }
  }
}

void q6_k_to_f32(const BlockQ6_K* w, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = half(w[b].d);
    for (int c = 0; c < 4; ++c) {
      const __m512i q = _mm512_sub_epi8(q6_codes(w[b], c / 2, c % 2), _mm512_set1_epi8(32));
      for (int g = 0; g < 4; ++g) {
        const __m512 s = _mm512_set1_ps(d * float(w[b].scales[4 * c + g]));
        const __m128i q16 = _mm512_extracti32x4_epi32(q, 0);
        const __m128i qg = g == 0 ? q16 : g == 1 ? _mm512_extracti32x4_epi32(q, 1)
                                    : g == 2 ? _mm512_extracti32x4_epi32(q, 2) : _mm512_extracti32x4_epi32(q, 3);
        _mm512_storeu_ps(y + 256 * b + 64 * c + 16 * g, _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(qg))));
      }
    }
  }
}

// 16 codes (bytes, signed or unsigned) to f32; quarter g (16 bytes) of a 64-byte vector.
template <bool Signed>
inline __m512 to_ps(__m128i q) {
  return _mm512_cvtepi32_ps(Signed ? _mm512_cvtepi8_epi32(q) : _mm512_cvtepu8_epi32(q));
}
inline __m128i quarter(__m512i v, int g) {
  switch (g) {
    case 0: return _mm512_extracti32x4_epi32(v, 0);
    case 1: return _mm512_extracti32x4_epi32(v, 1);
    case 2: return _mm512_extracti32x4_epi32(v, 2);
    default: return _mm512_extracti32x4_epi32(v, 3);
  }
}

// Q4_1 and Q5_1: x = q·d + m (q·d is exact, so the FMA rounds as ref's sum does); Q5_0: x = (q - 16)·d.
template <class Block>
void q32_to_f32(const Block* w, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 d = _mm512_set1_ps(half(w[b].d));
    const __m512i c = _mm512_zextsi256_si512(block_codes(w[b]));
    for (int k = 0; k < 2; ++k) {
      __m512 v;
      if constexpr (std::is_same_v<Block, BlockQ5_0>)
        v = _mm512_mul_ps(to_ps<true>(_mm_sub_epi8(quarter(c, k), _mm_set1_epi8(16))), d);
      else
        v = _mm512_fmadd_ps(to_ps<false>(quarter(c, k)), d, _mm512_set1_ps(half(w[b].m)));
      _mm512_storeu_ps(y + 32 * b + 16 * k, v);
    }
  }
}

// Q2_K, Q3_K, Q5_K: per 16 values (d·sc)·(q - off) - dmin·m, from the codes and scales of the dot kernel.
template <class Block, __m512i (*Codes)(const Block&, int), KScales (*Scales)(const Block&)>
void k_to_f32(const Block* w, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const KScales k = Scales(w[b]);
    alignas(32) int16_t sc[16], m[16];
    _mm256_store_si256((__m256i*)sc, k.sc16), _mm256_store_si256((__m256i*)m, k.m16);
    for (int c = 0; c < 4; ++c) {
      const __m512i q = _mm512_sub_epi8(Codes(w[b], c), _mm512_set1_epi8(char(k.off)));
      for (int g = 0; g < 4; ++g) {
        const int j = 4 * c + g;
        const __m512 v = _mm512_mul_ps(_mm512_set1_ps(k.d * float(sc[j])), to_ps<true>(quarter(q, g)));
        _mm512_storeu_ps(y + 256 * b + 16 * j, k.dmin == 0 ? v : _mm512_sub_ps(v, _mm512_set1_ps(k.dmin * float(m[j]))));
      }
    }
  }
}

// f32, f16 and bf16 rows, 16 values at a time with a masked tail.
void plain_to_f32(DType t, const void* src, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    __m512 v;
    if (t == DType::F32) {
      v = _mm512_maskz_loadu_ps(k, static_cast<const float*>(src) + i);
    } else {
      const __m256i h = _mm256_maskz_loadu_epi16(k, static_cast<const uint16_t*>(src) + i);
      v = t == DType::F16 ? _mm512_cvtph_ps(h) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    _mm512_mask_storeu_ps(y + i, k, v);
  }
}

}  // namespace

float dot_f32(const float* a, const float* b, int n) {
  __m512 acc = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

void quantize_acts_row(const float* x, int64_t n, int group, int8_t* q, float* d, int16_t* s16) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t g = 0; g < n; g += group) {
    __m512 m = _mm512_setzero_ps();
    for (int j = 0; j < group; j += 16)  // a NaN keeps m, as std::max does
      m = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(x + g + j), abs_mask), m);
    const float amax = _mm512_reduce_max_ps(m);
    const float dg = amax / 127.f, id = dg != 0 ? 1.f / dg : 0.f;
    for (int j = 0; j < group; j += 32) d[(g + j) / 32] = dg;
    for (int j = 0; j < group; j += 16) {  // nearest_product (quant.cpp): one fma, nearest_int's trick
      const __m512 v = _mm512_fmadd_ps(_mm512_loadu_ps(x + g + j), _mm512_set1_ps(id), _mm512_set1_ps(12582912.f));
      const __m512i c = _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x007fffff)),
                                         _mm512_set1_epi32(0x00400000));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(q + g + j), _mm512_cvtepi32_epi8(c));
      s16[(g + j) / 16] = int16_t(_mm512_reduce_add_epi32(c));
    }
  }
}

float dot_acts(DType t, const void* w_row, const QuantizedActs& a, int row) {
  const ActRow x = act_row(a, row);
  switch (t) {
    case DType::Q8_0: return dot_q8_0(static_cast<const BlockQ8_0*>(w_row), x, a.n / 32);
    case DType::Q4_0: return dot_q4_0(static_cast<const BlockQ4_0*>(w_row), x, a.n / 32);
    case DType::Q4_1: return dot_32(static_cast<const BlockQ4_1*>(w_row), x, a.n / 32);
    case DType::Q5_0: return dot_32(static_cast<const BlockQ5_0*>(w_row), x, a.n / 32);
    case DType::Q5_1: return dot_32(static_cast<const BlockQ5_1*>(w_row), x, a.n / 32);
    case DType::Q2_K: return dot_k<BlockQ2_K, q2_k_codes, q2_k_scales>(static_cast<const BlockQ2_K*>(w_row), x, a.n / 256);
    case DType::Q3_K:
      return dot_k<BlockQ3_K, q3_k_codes, q3_k_scales_vec>(static_cast<const BlockQ3_K*>(w_row), x, a.n / 256);
    case DType::Q4_K: return dot_q4_k(static_cast<const BlockQ4_K*>(w_row), x, a.n / 256);
    case DType::Q5_K: return dot_k<BlockQ5_K, q5_k_codes, q5_k_scales>(static_cast<const BlockQ5_K*>(w_row), x, a.n / 256);
    default: return dot_q6_k(static_cast<const BlockQ6_K*>(w_row), x, a.n / 256);
  }
}

void quant_rows(DType t, const uint8_t* w, size_t rb, int nr, const QuantizedActs& a, int row, float* out,
                std::vector<uint8_t>& buf) {
  const ActRow x = act_row(a, row);
  switch (t) {
    case DType::Q2_K: return rows16<DType::Q2_K>(w, rb, nr, x, a.n, out, buf);
    case DType::Q3_K: return rows16<DType::Q3_K>(w, rb, nr, x, a.n, out, buf);
    case DType::Q4_K: return rows16<DType::Q4_K>(w, rb, nr, x, a.n, out, buf);
    case DType::Q5_K: return rows16<DType::Q5_K>(w, rb, nr, x, a.n, out, buf);
    default: return rows16<DType::Q6_K>(w, rb, nr, x, a.n, out, buf);
  }
}

void row_to_f32(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::Q8_0: return q8_0_to_f32(static_cast<const BlockQ8_0*>(src), dst, n / 32);
    case DType::Q4_0: return q4_0_to_f32(static_cast<const BlockQ4_0*>(src), dst, n / 32);
    case DType::Q4_K: return q4_k_to_f32(static_cast<const BlockQ4_K*>(src), dst, n / 256);
    case DType::Q6_K: return q6_k_to_f32(static_cast<const BlockQ6_K*>(src), dst, n / 256);
    case DType::Q4_1: return q32_to_f32(static_cast<const BlockQ4_1*>(src), dst, n / 32);
    case DType::Q5_0: return q32_to_f32(static_cast<const BlockQ5_0*>(src), dst, n / 32);
    case DType::Q5_1: return q32_to_f32(static_cast<const BlockQ5_1*>(src), dst, n / 32);
    case DType::Q2_K: return k_to_f32<BlockQ2_K, q2_k_codes, q2_k_scales>(static_cast<const BlockQ2_K*>(src), dst, n / 256);
    case DType::Q3_K:
      return k_to_f32<BlockQ3_K, q3_k_codes, q3_k_scales_vec>(static_cast<const BlockQ3_K*>(src), dst, n / 256);
    case DType::Q5_K: return k_to_f32<BlockQ5_K, q5_k_codes, q5_k_scales>(static_cast<const BlockQ5_K*>(src), dst, n / 256);
    default: return plain_to_f32(t, src, dst, n);
  }
}

}  // namespace unmask::avx512

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
