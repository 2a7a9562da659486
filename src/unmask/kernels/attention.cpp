#include "unmask/kernels/attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/vec_math.h"

// Two paths, both computing each output row on exactly one thread in a fixed order (deterministic whatever the
// thread count):
//  - tiled (AVX-512, Tq > kDirectMaxTq): per (head, tile of kBq queries), key blocks of kBk keys; scores from K
//    transposed once per call into kt (Hkv, D, Tkp); flash-style online softmax in f32; P·V read straight from v.
//  - direct (decode, or no AVX-512): per (query, head), the visible keys only, in plain SIMD loops.

namespace unmask {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int kDirectMaxTq = 4;

struct Dims {
  int Tq, Tk, Hq, Hkv, D;
  float scale;
  int64_t ld() const { return int64_t(Hkv) * D; }  // stride between key rows of one head
};

void check_spans(const KeySpan* spans, int Tq, int Tk) {
  for (int i = 0; i < Tq; ++i) {
    const KeySpan& s = spans[i];
    bool ok0 = s.begin0 == s.end0 || (0 <= s.begin0 && s.begin0 < s.end0 && s.end0 <= Tk);
    bool ok1 = s.begin1 == s.end1 || (0 <= s.begin1 && s.begin1 < s.end1 && s.end1 <= Tk);
    bool both = s.begin0 < s.end0 && s.begin1 < s.end1;
    bool ok = ok0 && ok1 && (!both || s.end0 <= s.begin1) && (s.end0 > s.begin0 || s.end1 > s.begin1);
    check(ok, "attention_forward: query {} sees keys [{}, {}) + [{}, {}); expected disjoint ordered ranges in "
          "[0, Tk = {}) holding at least one key", i, s.begin0, s.end0, s.begin1, s.end1, Tk);
  }
}

// ---- direct path: one query row, its visible keys only ----

// q (D), k/v rows of one kv head at stride d.ld(); s (Tk) and acc (D) are scratch -> out (D), lse (1) or null.
void attend_row(float* out, float* lse, const float* q, const float* k, const float* v, const KeySpan& sp,
                const Dims& d, float* s, float* acc) {
  const int D = d.D;
  const int ranges[2][2] = {{sp.begin0, sp.end0}, {sp.begin1, sp.end1}};
  int n = 0;
  for (const auto& r : ranges)
    for (int j = r[0]; j < r[1]; ++j) {
      const float* kr = k + j * d.ld();
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int c = 0; c < D; ++c) dot += q[c] * kr[c];
      s[n++] = dot * d.scale;
    }
  const float m = vec::max_of(s, n);
  const float l = vec::exp_shift_sum(s, s, n, m);
  std::fill(acc, acc + D, 0.0f);
  n = 0;
  for (const auto& r : ranges)
    for (int j = r[0]; j < r[1]; ++j) {
      const float p = s[n++], *vr = v + j * d.ld();
#pragma omp simd
      for (int c = 0; c < D; ++c) acc[c] += p * vr[c];
    }
  const float inv = 1.0f / l;
  for (int c = 0; c < D; ++c) out[c] = acc[c] * inv;
  if (lse) *lse = m + std::log(l);
}

void attention_direct(float* out, float* lse, const float* q, const float* k, const float* v, const KeySpan* spans,
                      const Dims& d) {
  const int64_t units = int64_t(d.Tq) * d.Hq, group = d.Hq / d.Hkv;
#pragma omp parallel if (units > 1 && int64_t(d.Tk) * d.D * units >= 16384)
  {
    std::vector<float> s(d.Tk), acc(d.D);
#pragma omp for schedule(static)
    for (int64_t u = 0; u < units; ++u) {
      const int t = int(u / d.Hq), h = int(u % d.Hq);
      const int64_t kv = int64_t(h / group) * d.D;
      attend_row(out + u * d.D, lse ? lse + u : nullptr, q + u * d.D, k + kv, v + kv, spans[t], d, s.data(),
                 acc.data());
    }
  }
}

#if defined(__AVX512F__)
// ---- tiled path ----

constexpr int kBq = 16;  // queries per tile (4 groups of 4 rows)
constexpr int kBk = 64;  // keys per block (4 vectors)

// Bit j of the result: key j0 + j lies in [b, e).
inline uint64_t range_bits(int b, int e, int j0) {
  const int lo = std::max(b, j0) - j0, hi = std::min(e, j0 + kBk) - j0;
  if (hi <= lo) return 0;
  const uint64_t w = uint64_t(hi - lo);
  return (w == 64 ? ~0ull : (1ull << w) - 1) << lo;
}

// S (4, kBk) = q rows (4 pointers, D each) · kt block (D, kBk; row stride ldk).
inline void scores_4x64(float* S, const float* const* q, const float* kt, int64_t ldk, int D) {
  __m512 a[4][4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) a[r][c] = _mm512_setzero_ps();
  for (int i = 0; i < D; ++i) {
    const float* kd = kt + i * ldk;
    const __m512 k0 = _mm512_loadu_ps(kd), k1 = _mm512_loadu_ps(kd + 16);
    const __m512 k2 = _mm512_loadu_ps(kd + 32), k3 = _mm512_loadu_ps(kd + 48);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m512 qv = _mm512_set1_ps(q[r][i]);
      a[r][0] = _mm512_fmadd_ps(qv, k0, a[r][0]);
      a[r][1] = _mm512_fmadd_ps(qv, k1, a[r][1]);
      a[r][2] = _mm512_fmadd_ps(qv, k2, a[r][2]);
      a[r][3] = _mm512_fmadd_ps(qv, k3, a[r][3]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) _mm512_storeu_ps(S + r * kBk + 16 * c, a[r][c]);
}

// O (4, 16·NV; row stride ldo) += P (4, keys [j0, j1); row stride kBk) · V (keys, 16·NV; row stride ldv). The
// last vector of a row may be partial: mk (NV) are the lane masks of v's columns.
template <int NV>
inline void pv_4(float* O, int ldo, const float* P, const float* v, int64_t ldv, int j0, int j1,
                 const __mmask16* mk) {
  __m512 a[4][NV];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) a[r][c] = _mm512_loadu_ps(O + r * ldo + 16 * c);
  for (int j = j0; j < j1; ++j) {
    const float* vr = v + j * ldv;
    __m512 vv[NV];
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) vv[c] = _mm512_maskz_loadu_ps(mk[c], vr + 16 * c);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m512 p = _mm512_set1_ps(P[r * kBk + j]);
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c) a[r][c] = _mm512_fmadd_ps(p, vv[c], a[r][c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) _mm512_storeu_ps(O + r * ldo + 16 * c, a[r][c]);
}

// Per-thread state of one (head, query tile).
struct Tile {
  alignas(64) float S[kBq * kBk];  // scores, then probabilities, of the current key block
  float m[kBq], l[kBq];            // running max and sum of each row
  uint64_t bits[kBq];              // visible keys of each row in the current block
  float* O;                        // (kBq, Dp) running numerator
  int Dp;
};

// Scales and masks one row of scores, updates its running max/sum, rescales its O row; leaves p in the row.
void online_row(Tile& tl, int r, float scale) {
  float* s = tl.S + r * kBk;
  const uint64_t bits = tl.bits[r];
  const __m512 sc = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(kNegInf);
  for (int c = 0; c < 4; ++c) {
    const __mmask16 k = __mmask16(bits >> (16 * c));
    _mm512_storeu_ps(s + 16 * c, _mm512_mask_mul_ps(ninf, k, _mm512_loadu_ps(s + 16 * c), sc));
  }
  const float mn = std::max(tl.m[r], vec::max_of(s, kBk));
  if (bits == 0 || mn == kNegInf) {  // nothing visible (yet): p = 0
    std::fill(s, s + kBk, 0.0f);
    return;
  }
  const float alpha = std::exp(tl.m[r] - mn);  // 0 on the first visible block
  const float sum = vec::exp_shift_sum(s, s, kBk, mn);
  tl.l[r] = tl.l[r] * alpha + sum;
  if (alpha != 1.0f) vec::scale(tl.O + r * tl.Dp, tl.Dp, alpha);
  tl.m[r] = mn;
}

// O rows [4·g, 4·g + 4) += P · V over keys [j0 + jl, j0 + jh) of the block; v points at key j0 of this kv head.
void pv_group(Tile& tl, int g, const float* v, int64_t ldv, int jl, int jh, const __mmask16* mk) {
  float* O = tl.O + 4 * g * tl.Dp;
  const float* P = tl.S + 4 * g * kBk;
  for (int c = 0; c < tl.Dp / 16; c += 4) {
    switch (std::min(4, tl.Dp / 16 - c)) {
      case 4: pv_4<4>(O + 16 * c, tl.Dp, P, v + 16 * c, ldv, jl, jh, mk + c); break;
      case 3: pv_4<3>(O + 16 * c, tl.Dp, P, v + 16 * c, ldv, jl, jh, mk + c); break;
      case 2: pv_4<2>(O + 16 * c, tl.Dp, P, v + 16 * c, ldv, jl, jh, mk + c); break;
      default: pv_4<1>(O + 16 * c, tl.Dp, P, v + 16 * c, ldv, jl, jh, mk + c); break;
    }
  }
}

// Marks the visible keys of each row in block [j0, j0 + kBk); returns their union.
uint64_t block_bits(Tile& tl, const KeySpan* spans, int nq, int j0) {
  uint64_t any = 0;
  for (int r = 0; r < kBq; ++r) {
    tl.bits[r] = r < nq ? range_bits(spans[r].begin0, spans[r].end0, j0) |
                              range_bits(spans[r].begin1, spans[r].end1, j0)
                        : 0;
    any |= tl.bits[r];
  }
  return any;
}

// Keys [lo, hi) hold every key some row of the tile sees.
void tile_key_hull(const KeySpan* spans, int nq, int& lo, int& hi) {
  lo = std::numeric_limits<int>::max(), hi = 0;
  for (int r = 0; r < nq; ++r) {
    const KeySpan& s = spans[r];
    if (s.begin0 < s.end0) lo = std::min(lo, s.begin0), hi = std::max(hi, s.end0);
    if (s.begin1 < s.end1) lo = std::min(lo, s.begin1), hi = std::max(hi, s.end1);
  }
}

// One head h, queries [t0, t0 + nq): out rows (nq, D) at stride Hq·D, lse at stride Hq.
void attend_tile(Tile& tl, float* out, float* lse, const float* q, const float* kt, const float* v,
                 const KeySpan* spans, const Dims& d, int h, int t0, int Tkp, const __mmask16* mk) {
  const int nq = std::min(kBq, d.Tq - t0), groups = (nq + 3) / 4, g = h / (d.Hq / d.Hkv);
  const float* qr[kBq];
  for (int r = 0; r < kBq; ++r) qr[r] = q + (int64_t(t0 + std::min(r, nq - 1)) * d.Hq + h) * d.D;
  std::fill(tl.m, tl.m + kBq, kNegInf);
  std::fill(tl.l, tl.l + kBq, 0.0f);
  std::fill(tl.O, tl.O + kBq * tl.Dp, 0.0f);
  const float* ktg = kt + int64_t(g) * d.D * Tkp;
  int lo, hi;
  tile_key_hull(spans + t0, nq, lo, hi);
  for (int j0 = lo / kBk * kBk; j0 < hi; j0 += kBk) {
    const uint64_t any = block_bits(tl, spans + t0, nq, j0);
    if (!any) continue;
    for (int gr = 0; gr < groups; ++gr) scores_4x64(tl.S + 4 * gr * kBk, qr + 4 * gr, ktg + j0, Tkp, d.D);
    for (int r = 0; r < 4 * groups; ++r) online_row(tl, r, d.scale);
    const int jl = std::countr_zero(any), jh = kBk - std::countl_zero(any);
    const float* vb = v + int64_t(j0) * d.ld() + int64_t(g) * d.D;
    for (int gr = 0; gr < groups; ++gr) pv_group(tl, gr, vb, d.ld(), jl, jh, mk);
  }
  for (int r = 0; r < nq; ++r) {
    const float inv = 1.0f / tl.l[r];
    float* o = out + (int64_t(t0 + r) * d.Hq + h) * d.D;
    for (int c = 0; c < d.D; ++c) o[c] = tl.O[r * tl.Dp + c] * inv;
    if (lse) lse[int64_t(t0 + r) * d.Hq + h] = tl.m[r] + std::log(tl.l[r]);
  }
}

// k (Tk, Hkv, D) -> kt (Hkv, D, Tkp), keys in blocks of 16 so that writes are contiguous.
void pack_kt(float* kt, const float* k, const Dims& d, int Tkp) {
  const int nb = (d.Tk + 15) / 16;
#pragma omp parallel for collapse(2) schedule(static) if (int64_t(d.Tk) * d.ld() >= 16384)
  for (int g = 0; g < d.Hkv; ++g)
    for (int b = 0; b < nb; ++b) {
      const int j0 = 16 * b, n = std::min(16, d.Tk - j0);
      for (int c = 0; c < d.D; ++c) {
        float* dst = kt + (int64_t(g) * d.D + c) * Tkp + j0;
        const float* src = k + int64_t(j0) * d.ld() + int64_t(g) * d.D + c;
        for (int j = 0; j < n; ++j) dst[j] = src[j * d.ld()];
      }
    }
}

void attention_tiled(float* out, float* lse, const float* q, const float* k, const float* v, const KeySpan* spans,
                     const Dims& d) {
  const int Tkp = (d.Tk + kBk - 1) / kBk * kBk, Dp = (d.D + 15) / 16 * 16;
  thread_local std::vector<float> kt_buf;  // grow-only, so repeated calls do not allocate
  if (kt_buf.size() < size_t(d.Hkv) * d.D * Tkp) kt_buf.assign(size_t(d.Hkv) * d.D * Tkp, 0.0f);
  const float* kt = kt_buf.data();  // named outside the parallel region: other threads have their own kt_buf
  pack_kt(kt_buf.data(), k, d, Tkp);
  std::vector<__mmask16> mk(Dp / 16);
  for (int c = 0; c < Dp / 16; ++c) mk[c] = vec::tail_mask(d.D - 16 * c);
  const int tiles = (d.Tq + kBq - 1) / kBq;
  const int64_t units = int64_t(d.Hq) * tiles;
#pragma omp parallel
  {
    std::vector<float> o(size_t(kBq) * Dp);
    Tile tl;
    tl.O = o.data();
    tl.Dp = Dp;
#pragma omp for schedule(static, 1)
    for (int64_t u = 0; u < units; ++u)
      attend_tile(tl, out, lse, q, kt, v, spans, d, int(u / tiles), int(u % tiles) * kBq, Tkp,
                  mk.data());
  }
}
#endif

}  // namespace

// q (Tq, Hq, D), k (Tk, Hkv, D), v (Tk, Hkv, D), spans (Tq) -> out (Tq, Hq, D), lse (Tq, Hq) or null.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const KeySpan* spans,
                       int Tq, int Tk, int Hq, int Hkv, int D, float scale) {
  check(Tq >= 0 && Tk > 0 && Hkv > 0 && Hq > 0 && Hq % Hkv == 0 && D > 0,
        "attention_forward: Tq {} Tk {} Hq {} Hkv {} D {}; expected positive sizes with Hq a multiple of Hkv", Tq,
        Tk, Hq, Hkv, D);
  check_spans(spans, Tq, Tk);
  const Dims d{Tq, Tk, Hq, Hkv, D, scale};
#if defined(__AVX512F__)
  if (Tq > kDirectMaxTq) return attention_tiled(out, lse, q, k, v, spans, d);
#endif
  attention_direct(out, lse, q, k, v, spans, d);
}

}  // namespace unmask
