#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/attention.h"
#include "unmask/kernels/attention_tile.h"
#include "unmask/kernels/vec_math.h"

// attention_forward_bf16: the tiled flash-style kernel of attention.cpp (tiles of 32 queries × 64 keys per head,
// score tile transposed keys × queries so the online softmax is vector-wide over queries), with both products as
// bf16 dot products (vdpbf16ps: each f32 lane adds a0·b0 + a1·b1 of a bf16 pair):
//  - S = Q·Kᵀ: lanes are queries, pairs are (d, d+1). Q of the tile is packed (D/2, 32 queries) of bf16 pairs, a
//    key row of K in bf16 already holds its pairs side by side, so one 32-bit broadcast feeds 16 queries.
//  - O += P·V: lanes are queries, pairs are keys (j, j+1). P is rounded to bf16 into (32 key pairs, 32 queries)
//    of pairs; V is packed once per call as (Tk/2, Hkv, D) pairs of consecutive keys.
// The scores are multiplied by `scale` in f32 (q is rounded unscaled, as the twin does). Max, exp, sum, the
// rescale of the running output and the final division stay f32; the softmax denominator sums unrounded p.
// Each output row is computed by one thread in a fixed order: deterministic whatever the thread count.
// Keys outside the hull of a tile's visible keys in a block are never multiplied: where a key pair straddles the
// hull's edge, the outside key's V half is masked to zero (so NaN in an unfilled cache tail does not leak), and its
// p is 0. K and V are converted whole (conversion does not trap on NaN).

namespace unmask {

namespace {

using namespace attn;



#if defined(__AVX512BF16__) && defined(__AVX512BW__)


struct Dims {
  int Tq, Tk, Hq, Hkv, D;
  float scale;
  int Dp;   // D rounded up to even: bf16 pairs per K row = Dp / 2
  int Tkp;  // Tk rounded up to kBk: packed K and V hold zero keys past Tk
};

inline __m512bh as_bh(__m512i x) { return (__m512bh)x; }

// 16-bit lane permutation that interleaves the halves of cvtne2ps_pbh(hi, lo): lo[0], hi[0], lo[1], hi[1], ...
inline __m512i interleave_index() {
  alignas(64) static const uint16_t idx[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                               8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  return _mm512_load_si512(idx);
}

// dst (Dp bf16) = row x (n floats) in bf16, zero-padded to Dp (Dp >= n, even).
inline void row_to_bf16(uint16_t* dst, const float* x, int n, int Dp) {
  for (int d = 0; d < Dp; d += 32) {
    const __m512 lo = _mm512_maskz_loadu_ps(vec::tail_mask(n - d), x + d);
    const __m512 hi = n - d > 16 ? _mm512_maskz_loadu_ps(vec::tail_mask(n - d - 16), x + d + 16)
                                 : _mm512_setzero_ps();
    const __m512i b = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    const int left = Dp - d;
    _mm512_mask_storeu_epi16(dst + d, left >= 32 ? ~__mmask32(0) : __mmask32((1u << left) - 1u), b);
  }
}

// Packed K and V of one call. k: key j, head g at row (j·Hkv + g) of Dp bf16. v: pair jp = keys (2jp, 2jp+1),
// head g, value d at (jp·Hkv + g)·D + d, one uint32 (bf16 of key 2jp low, key 2jp+1 high).
struct PackedKV {
  uint16_t* k;
  uint32_t* v;
};

// Converts key pair jp (keys 2jp, 2jp+1; zeros past Tk) of every head.
void pack_pair(PackedKV kv, const float* k, const float* v, const Dims& d, int jp) {
  const __m512i idx = interleave_index();
  for (int g = 0; g < d.Hkv; ++g) {
    for (int j = 2 * jp; j < 2 * jp + 2; ++j) {
      uint16_t* dst = kv.k + (int64_t(j) * d.Hkv + g) * d.Dp;
      if (j < d.Tk) row_to_bf16(dst, k + (int64_t(j) * d.Hkv + g) * d.D, d.D, d.Dp);
      else std::fill(dst, dst + d.Dp, uint16_t(0));
    }
    const int j0 = 2 * jp, j1 = 2 * jp + 1;
    const float* v0 = j0 < d.Tk ? v + (int64_t(j0) * d.Hkv + g) * d.D : nullptr;
    const float* v1 = j1 < d.Tk ? v + (int64_t(j1) * d.Hkv + g) * d.D : nullptr;
    uint32_t* dst = kv.v + (int64_t(jp) * d.Hkv + g) * d.D;
    for (int c = 0; c < d.D; c += 16) {
      const __mmask16 m = vec::tail_mask(d.D - c);
      const __m512 a = v0 ? _mm512_maskz_loadu_ps(m, v0 + c) : _mm512_setzero_ps();
      const __m512 b = v1 ? _mm512_maskz_loadu_ps(m, v1 + c) : _mm512_setzero_ps();
      const __m512i x = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
      _mm512_mask_storeu_epi32(dst + c, m, x);
    }
  }
}


// Per-thread state of one (head, query tile).
struct Tile {
  uint32_t* qt;  // (Dp/2, kBq): bf16 pairs (d, d+1) of the tile's queries (unscaled)
  float* st;     // (kBk, kBq): scores times scale, then probabilities, of the current key block, transposed
  uint32_t* pt;  // (kBk/2, kBq): bf16 pairs (p_j, p_j+1) of the block's probabilities
  float* ot;     // (D, kBq): running numerator, transposed
  uint16_t* row; // (Dp): one query row in bf16
  alignas(64) int32_t b0[kBq], e0[kBq], b1[kBq], e1[kBq];  // spans of the rows (empty for padding rows)
  __m512 m[2], l[2];                                        // running max and sum per row
};

// st rows [j, j + 8) (R vectors each) = scale · (k rows (8 pointers to Dp/2 pairs) · qt (Dp/2, kBq)).
template <int R>
__attribute__((noinline)) void scores_8(float* st, const uint32_t* const* kr, const uint32_t* qt, int Dh, __m512 scale) {
  __m512 a[kKg][R];
#pragma GCC unroll 8
  for (int j = 0; j < kKg; ++j)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) a[j][r] = _mm512_setzero_ps();
  for (int c = 0; c < Dh; ++c) {
    __m512bh qv[R];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) qv[r] = as_bh(_mm512_load_si512(qt + c * kBq + 16 * r));
#pragma GCC unroll 8
    for (int j = 0; j < kKg; ++j) {
      const __m512bh kv = as_bh(_mm512_set1_epi32(int(kr[j][c])));
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) a[j][r] = _mm512_dpbf16_ps(a[j][r], kv, qv[r]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < kKg; ++j)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) _mm512_store_ps(st + j * kBq + 16 * r, _mm512_mul_ps(a[j][r], scale));
}

// ot rows [d0, d0 + DG) = alpha · ot + Σ_{pairs jp in [pl, ph)} v pair jp, d0.. · pt[jp] (v: pairs of this kv
// head from the block start, stride ldv). With Masked, each V pair is ANDed with `mask` first (the half of a key
// outside the hull becomes 0, so a NaN there cannot reach the output).
// Kept out of line: inlined into the big tile function, g++ 12 spills the P vectors to the stack in the loop.
template <int R, int DG, bool Masked>
__attribute__((noinline)) void pv_rows(float* ot, const uint32_t* pt, const uint32_t* v, int64_t ldv, int pl, int ph, uint32_t mask,
                    const __m512* alpha) {
  __m512 a[DG][R];
#pragma GCC unroll 8
  for (int i = 0; i < DG; ++i)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) a[i][r] = _mm512_mul_ps(_mm512_load_ps(ot + i * kBq + 16 * r), alpha[r]);
  for (int jp = pl; jp < ph; ++jp) {
    __m512bh p[R];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) p[r] = as_bh(_mm512_load_si512(pt + jp * kBq + 16 * r));
    const uint32_t* vr = v + jp * ldv;
#pragma GCC unroll 8
    for (int i = 0; i < DG; ++i) {
      const __m512bh vv = as_bh(_mm512_set1_epi32(int(Masked ? vr[i] & mask : vr[i])));
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) a[i][r] = _mm512_dpbf16_ps(a[i][r], vv, p[r]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < DG; ++i)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) _mm512_store_ps(ot + i * kBq + 16 * r, a[i][r]);
}

// All of ot (D rows) over pairs [pl, ph).
template <int R, bool Masked>
void pv_range(Tile& tl, const uint32_t* v, int64_t ldv, int D, int pl, int ph, uint32_t mask, const __m512* alpha) {
  int d0 = 0;
  for (; d0 + kKg <= D; d0 += kKg)
    pv_rows<R, kKg, Masked>(tl.ot + d0 * kBq, tl.pt, v + d0, ldv, pl, ph, mask, alpha);
  for (; d0 < D; ++d0) pv_rows<R, 1, Masked>(tl.ot + d0 * kBq, tl.pt, v + d0, ldv, pl, ph, mask, alpha);
}

// ot = alpha · ot + P·V over pairs [pl, ph); the first / last pair's V is ANDed with mfirst / mlast (~0: none).
// The edge pairs go through their own passes so that the inner loop of the interior stays unmasked.
template <int R>
void pv_block(Tile& tl, const uint32_t* v, int64_t ldv, int D, int pl, int ph, uint32_t mfirst, uint32_t mlast,
              const __m512* alpha) {
  const __m512 one[2] = {_mm512_set1_ps(1.0f), _mm512_set1_ps(1.0f)};
  int lo = pl, hi = ph;
  if (mfirst != ~0u || (ph - pl == 1 && mlast != ~0u)) {
    pv_range<R, true>(tl, v, ldv, D, lo, lo + 1, mfirst & (ph - pl == 1 ? mlast : ~0u), alpha);
    ++lo, alpha = one;
  }
  const bool last = mlast != ~0u && hi > lo;
  if (last) --hi;
  if (hi > lo) pv_range<R, false>(tl, v, ldv, D, lo, hi, ~0u, alpha), alpha = one;
  if (last) pv_range<R, true>(tl, v, ldv, D, hi, hi + 1, mlast, alpha);
}


// Online softmax over key pairs [pl, ph) of the block (scores outside [jl, jh) already -inf): new running max,
// p = exp(s - max) rounded to bf16 pairs into pt, running sum of the unrounded p; alpha (R) receives the factor
// that rescales the running numerator. Rows that have seen no key yet keep max -inf and get p = 0.
template <int R>
void softmax_block(Tile& tl, int pl, int ph, __m512* alpha) {
  const __m512i idx = interleave_index();
  for (int r = 0; r < R; ++r) {
    __m512 mx = tl.m[r];
    for (int j = 2 * pl; j < 2 * ph; ++j) mx = _mm512_max_ps(mx, _mm512_load_ps(tl.st + j * kBq + 16 * r));
    const __m512 shift = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(mx, _mm512_set1_ps(kNegInf), _CMP_NEQ_OQ), mx);
    alpha[r] = vec::exp512(_mm512_sub_ps(tl.m[r], shift));  // 0 while the old max is -inf
    __m512 sum = _mm512_setzero_ps();
    for (int jp = pl; jp < ph; ++jp) {
      const float* s = tl.st + 2 * jp * kBq + 16 * r;
      const __m512 p0 = vec::exp512(_mm512_sub_ps(_mm512_load_ps(s), shift));
      const __m512 p1 = vec::exp512(_mm512_sub_ps(_mm512_load_ps(s + kBq), shift));
      sum = _mm512_add_ps(_mm512_add_ps(sum, p0), p1);
      const __m512i x = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(p1, p0));
      _mm512_store_si512(tl.pt + jp * kBq + 16 * r, x);
    }
    tl.l[r] = _mm512_fmadd_ps(tl.l[r], alpha[r], sum);
    tl.m[r] = mx;
  }
  for (int r = R; r < 2; ++r) alpha[r] = _mm512_set1_ps(1.0f);
}

// One key block [j0, j0 + kBk) of a tile; kv holds the packed keys and values.
template <int R>
void tile_block(Tile& tl, PackedKV kv, const Dims& d, int g, int j0, uint64_t any, bool full) {
  const int jl = std::countr_zero(any), jh = kBk - std::countl_zero(any);
  const int jh8 = (jh + kKg - 1) / kKg * kKg;
  const __m512 scale = _mm512_set1_ps(d.scale);
  for (int j = jl / kKg * kKg; j < jh8; j += kKg) {
    const uint32_t* kr[kKg];
    for (int i = 0; i < kKg; ++i)
      kr[i] = reinterpret_cast<const uint32_t*>(kv.k + (int64_t(j0 + j + i) * d.Hkv + g) * d.Dp);
    scores_8<R>(tl.st + j * kBq, kr, tl.qt, d.Dp / 2, scale);
  }
  if (!full) mask_block<R>(tl, j0, jl, jh);
  // Whole key pairs: the key beside the hull's edge gets score -inf (p = 0) and, in P·V, V = 0.
  const __m512 ninf = _mm512_set1_ps(kNegInf);
  if (jl % 2)
    for (int r = 0; r < R; ++r) _mm512_store_ps(tl.st + (jl - 1) * kBq + 16 * r, ninf);
  if (jh % 2)
    for (int r = 0; r < R; ++r) _mm512_store_ps(tl.st + jh * kBq + 16 * r, ninf);
  const int pl = jl / 2, ph = (jh + 1) / 2;
  __m512 alpha[2];
  softmax_block<R>(tl, pl, ph, alpha);
  const int64_t ldv = int64_t(d.Hkv) * d.D;  // uint32 per key pair
  const uint32_t* v = kv.v + (int64_t(j0 / 2) * d.Hkv + g) * d.D;
  pv_block<R>(tl, v, ldv, d.D, pl, ph, jl % 2 ? 0xffff0000u : ~0u, jh % 2 ? 0x0000ffffu : ~0u, alpha);
}

// Loads the tile's queries (bf16 pairs, transposed) and spans; padding rows get zeros and empty spans.
void load_tile(Tile& tl, const float* q, const KeySpan* spans, const Dims& d, int h, int t0, int nq) {
  const int Dh = d.Dp / 2;
  for (int r = 0; r < kBq; ++r) {
    const KeySpan s = r < nq ? spans[t0 + r] : KeySpan{};
    tl.b0[r] = s.begin0, tl.e0[r] = s.end0, tl.b1[r] = s.begin1, tl.e1[r] = s.end1;
    if (r < nq) {
      row_to_bf16(tl.row, q + (int64_t(t0 + r) * d.Hq + h) * d.D, d.D, d.Dp);
      const uint32_t* pairs = reinterpret_cast<const uint32_t*>(tl.row);
      for (int c = 0; c < Dh; ++c) tl.qt[c * kBq + r] = pairs[c];
    } else {
      for (int c = 0; c < Dh; ++c) tl.qt[c * kBq + r] = 0;
    }
  }
  std::fill(tl.ot, tl.ot + d.D * kBq, 0.0f);
  tl.m[0] = tl.m[1] = _mm512_set1_ps(kNegInf);
  tl.l[0] = tl.l[1] = _mm512_setzero_ps();
}

// One head h, queries [t0, t0 + nq).
void attend_tile(Tile& tl, float* out, float* lse, const float* q, PackedKV kv, const KeySpan* spans, const Dims& d,
                 int h, int t0) {
  const int nq = std::min(kBq, d.Tq - t0);
  const int g = h / (d.Hq / d.Hkv);
  load_tile(tl, q, spans, d, h, t0, nq);
  for_each_key_block(tl, nq, [&](int j0, uint64_t any, bool full) {
    if (nq > 16) tile_block<2>(tl, kv, d, g, j0, any, full);
    else tile_block<1>(tl, kv, d, g, j0, any, full);
  });
  store_tile(tl, out, lse, d, h, t0, nq);
}

// A 64-byte aligned pointer into buf, grown (never shrunk) to hold at least `bytes`.
template <typename T>
T* aligned_scratch(std::vector<float>& buf, size_t bytes) {
  if (buf.size() < bytes / sizeof(float) + 16) buf.resize(bytes / sizeof(float) + 16);
  const auto at = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<T*>(buf.data() + ((64 - at % 64) % 64) / sizeof(float));
}

void attention_tiled_bf16(float* out, float* lse, const float* q, const float* k, const float* v,
                          const KeySpan* spans, const Dims& d) {
  // Packed K (Tkp, Hkv, Dp) bf16 and V (Tkp/2, Hkv, D) pairs: this calling thread's grow-only scratch.
  thread_local std::vector<float> kv_buf;
  const size_t kbytes = size_t(d.Tkp) * d.Hkv * d.Dp * 2, vbytes = size_t(d.Tkp / 2) * d.Hkv * d.D * 4;
  uint16_t* kb = aligned_scratch<uint16_t>(kv_buf, (kbytes + 63) / 64 * 64 + vbytes);
  const PackedKV kv{kb, reinterpret_cast<uint32_t*>(kb + (kbytes + 63) / 64 * 32)};
  const int tiles = (d.Tq + kBq - 1) / kBq, pairs = d.Tkp / 2;
  const int64_t units = int64_t(d.Hq) * tiles;
#pragma omp parallel if (units > 1)
  {
#pragma omp for schedule(static)
    for (int jp = 0; jp < pairs; ++jp) pack_pair(kv, k, v, d, jp);
    thread_local std::vector<float> tile_buf;
    Tile tl;
    const size_t qbytes = size_t(d.Dp / 2) * kBq * 4, sbytes = size_t(kBk) * kBq * 4, pbytes = sbytes / 2;
    const size_t obytes = size_t(d.D) * kBq * 4, rbytes = (size_t(d.Dp) * 2 + 63) / 64 * 64;
    char* base = aligned_scratch<char>(tile_buf, qbytes + sbytes + pbytes + obytes + rbytes + 4 * 64);
    auto take = [&](size_t bytes) {
      char* p = base;
      base += (bytes + 63) / 64 * 64;
      return p;
    };
    tl.qt = reinterpret_cast<uint32_t*>(take(qbytes)), tl.st = reinterpret_cast<float*>(take(sbytes));
    tl.pt = reinterpret_cast<uint32_t*>(take(pbytes)), tl.ot = reinterpret_cast<float*>(take(obytes));
    tl.row = reinterpret_cast<uint16_t*>(take(rbytes));
    // Tiles in the order 0, n-1, 1, n-2, ... dealt out two at a time: balanced under a causal mask.
#pragma omp for schedule(static, 2)
    for (int64_t u = 0; u < units; ++u) {
      const int i = int(u % tiles), tile = i % 2 == 0 ? i / 2 : tiles - 1 - i / 2;
      attend_tile(tl, out, lse, q, kv, spans, d, int(u / tiles), tile * kBq);
    }
  }
}

#else

// No AVX512-BF16: round q, k, v to bf16 (as the twin does) and run the f32 kernel; P stays f32.
float round_bf16(float x) {
  if (std::fpclassify(x) == FP_SUBNORMAL) return std::copysign(0.0f, x);
  uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return x;
  u += 0x7fffu + ((u >> 16) & 1u);
  return std::bit_cast<float>(u & 0xffff0000u);
}

std::vector<float> rounded(const float* x, int64_t n) {
  std::vector<float> r(n);
  for (int64_t i = 0; i < n; ++i) r[i] = round_bf16(x[i]);
  return r;
}

#endif

}  // namespace

// q (Tq, Hq, D), k (Tk, Hkv, D), v (Tk, Hkv, D), spans (Tq) -> out (Tq, Hq, D), lse (Tq, Hq) or null.
void attention_forward_bf16(float* out, float* lse, const float* q, const float* k, const float* v,
                            const KeySpan* spans, int Tq, int Tk, int Hq, int Hkv, int D, float scale) {
  if (Tq <= attn::kDirectMaxTq) return attention_forward(out, lse, q, k, v, spans, Tq, Tk, Hq, Hkv, D, scale);
  check(Tk > 0 && Hkv > 0 && Hq > 0 && Hq % Hkv == 0 && D > 0,
        "attention_forward_bf16: Tq {} Tk {} Hq {} Hkv {} D {}; expected positive sizes with Hq a multiple of Hkv",
        Tq, Tk, Hq, Hkv, D);
  attn::check_spans(spans, Tq, Tk, "attention_forward_bf16");
#if defined(__AVX512BF16__) && defined(__AVX512BW__)
  const Dims d{Tq, Tk, Hq, Hkv, D, scale, (D + 1) / 2 * 2, (Tk + kBk - 1) / kBk * kBk};
  attention_tiled_bf16(out, lse, q, k, v, spans, d);
#else
  const auto qr = rounded(q, int64_t(Tq) * Hq * D);
  const auto kr = rounded(k, int64_t(Tk) * Hkv * D), vr = rounded(v, int64_t(Tk) * Hkv * D);
  attention_forward(out, lse, qr.data(), kr.data(), vr.data(), spans, Tq, Tk, Hq, Hkv, D, scale);
#endif
}

}  // namespace unmask
