// What the f32 and bf16 attention kernels share (internal to kernels/): the tile geometry, the span check, and the
// masking of a key block's scores by the rows' key spans.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "unmask/base/error.h"
#include "unmask/kernels/attention.h"

#if defined(__AVX512F__)
#include "unmask/kernels/vec_math.h"
#endif

namespace unmask::attn {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int kDirectMaxTq = 4;  // up to this many queries: the direct (decode) path
constexpr int kBq = 32;          // queries per tile: two vectors of 16
constexpr int kBk = 64;          // keys per block
constexpr int kKg = 8;           // keys per score micro-kernel call, d values per P·V call

// Every query sees disjoint ordered ranges inside [0, Tk) holding at least one key; `who` names the kernel.
inline void check_spans(const KeySpan* spans, int Tq, int Tk, const char* who) {
  for (int i = 0; i < Tq; ++i) {
    const KeySpan& s = spans[i];
    bool ok0 = s.begin0 == s.end0 || (0 <= s.begin0 && s.begin0 < s.end0 && s.end0 <= Tk);
    bool ok1 = s.begin1 == s.end1 || (0 <= s.begin1 && s.begin1 < s.end1 && s.end1 <= Tk);
    bool both = s.begin0 < s.end0 && s.begin1 < s.end1;
    bool ok = ok0 && ok1 && (!both || s.end0 <= s.begin1) && (s.end0 > s.begin0 || s.end1 > s.begin1);
    check(ok, "{}: query {} sees keys [{}, {}) + [{}, {}); expected disjoint ordered ranges in [0, Tk = {}) holding "
          "at least one key", who, i, s.begin0, s.end0, s.begin1, s.end1, Tk);
  }
}

// Bit j of the result: key j0 + j lies in [b, e).
inline uint64_t range_bits(int b, int e, int j0) {
  const int lo = std::max(b, j0) - j0, hi = std::min(e, j0 + kBk) - j0;
  if (hi <= lo) return 0;
  const uint64_t w = uint64_t(hi - lo);
  return (w == 64 ? ~0ull : (1ull << w) - 1) << lo;
}

// Calls block(j0, any, full) for each key block [j0, j0 + kBk) that some of the tile's nq rows see: any has bit j set
// when some row sees key j0 + j; full when every row sees every key of the range [jl, jh) that any spans, so that
// no score needs masking (padding rows see zeros: harmless, discarded). The tile holds the rows' spans b0, e0, b1,
// e1.
template <typename Tile, typename Block>
void for_each_key_block(const Tile& tl, int nq, Block&& block) {
  int lo = std::numeric_limits<int>::max(), hi = 0;
  for (int r = 0; r < nq; ++r) {
    if (tl.b0[r] < tl.e0[r]) lo = std::min(lo, tl.b0[r]), hi = std::max(hi, tl.e0[r]);
    if (tl.b1[r] < tl.e1[r]) lo = std::min(lo, tl.b1[r]), hi = std::max(hi, tl.e1[r]);
  }
  for (int j0 = lo / kBk * kBk; j0 < hi; j0 += kBk) {
    uint64_t any = 0, all = ~0ull;
    for (int r = 0; r < nq; ++r) {
      const uint64_t bits = range_bits(tl.b0[r], tl.e0[r], j0) | range_bits(tl.b1[r], tl.e1[r], j0);
      any |= bits, all &= bits;
    }
    if (!any) continue;
    const int jl = std::countr_zero(any), w = kBk - std::countl_zero(any) - jl;
    block(j0, any, all == any && any == (w == 64 ? ~0ull : ((1ull << w) - 1) << jl));
  }
}

#if defined(__AVX512F__)
// Sets the scores of keys a row may not see to -inf: key j0 + j for j in [jl, jh). The tile holds the rows' spans
// (b0, e0, b1, e1: kBq each) and the transposed scores st (kBk, kBq).
template <int R, typename Tile>
void mask_block(Tile& tl, int j0, int jl, int jh) {
  const __m512 ninf = _mm512_set1_ps(kNegInf);
  for (int r = 0; r < R; ++r) {
    const __m512i b0 = _mm512_load_si512(tl.b0 + 16 * r), e0 = _mm512_load_si512(tl.e0 + 16 * r);
    const __m512i b1 = _mm512_load_si512(tl.b1 + 16 * r), e1 = _mm512_load_si512(tl.e1 + 16 * r);
    for (int j = jl; j < jh; ++j) {
      const __m512i key = _mm512_set1_epi32(j0 + j);
      const __mmask16 in0 = _mm512_cmple_epi32_mask(b0, key) & _mm512_cmplt_epi32_mask(key, e0);
      const __mmask16 in1 = _mm512_cmple_epi32_mask(b1, key) & _mm512_cmplt_epi32_mask(key, e1);
      float* s = tl.st + j * kBq + 16 * r;
      _mm512_store_ps(s, _mm512_mask_mov_ps(ninf, in0 | in1, _mm512_load_ps(s)));
    }
  }
}

// The tile's output rows (nq, D) at stride Hq·D = ot / l (ot (D, kBq) transposed); lse = m + log l. The tile holds
// the running numerator ot and, per 16 rows, the running max m and sum l.
template <typename Tile, typename Dims>
void store_tile(const Tile& tl, float* out, float* lse, const Dims& d, int h, int t0, int nq) {
  alignas(64) float m[kBq], l[kBq];
  _mm512_store_ps(m, tl.m[0]), _mm512_store_ps(m + 16, tl.m[1]);
  _mm512_store_ps(l, tl.l[0]), _mm512_store_ps(l + 16, tl.l[1]);
  for (int r = 0; r < nq; ++r) {
    const float inv = 1.0f / l[r];
    float* o = out + (int64_t(t0 + r) * d.Hq + h) * d.D;
    for (int c = 0; c < d.D; ++c) o[c] = tl.ot[c * kBq + r] * inv;
    if (lse) lse[int64_t(t0 + r) * d.Hq + h] = m[r] + std::log(l[r]);
  }
}
#endif

}  // namespace unmask::attn
