#include "unmask/kernels/attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <cstdint>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/attention_tile.h"
#include "unmask/kernels/vec_math.h"

// Two paths, both computing each output row on exactly one thread in a fixed order (deterministic whatever the
// thread count):
//  - tiled (AVX-512, Tq > kDirectMaxTq): per (head, tile of 32 queries), key blocks of 64 keys; transposed score
//    tiles so that the flash-style online softmax (running max and sum in f32) is vector-wide over queries.
//  - direct (decode, or no AVX-512): per (query, head), the visible keys only, in plain SIMD loops.
// Only keys inside the hull of a tile's visible keys are read; a key no query of the tile sees but that lies
// between two visible ones has its score masked to -inf, but its V row is multiplied by p = 0, so V must be finite
// there (K need not be).

namespace unmask {

namespace {

using namespace attn;


struct Dims {
  int Tq, Tk, Hq, Hkv, D;
  float scale;
  int64_t ld() const { return int64_t(Hkv) * D; }  // stride between key rows of one head
};


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
    thread_local std::vector<float> s, acc;  // grow-only per thread: no allocation per step once warm
    if (s.size() < size_t(d.Tk)) s.resize(d.Tk);
    if (acc.size() < size_t(d.D)) acc.resize(d.D);
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
// The score and probability tiles are kept transposed, keys × queries, so that one vector holds 16 queries: the
// running max, sum and rescale of the online softmax are then plain vector operations with no horizontal
// reductions, and K and V are read in place (broadcasts from their rows), with no packing.



// Per-thread state of one (head, query tile). Row vectors: R = 1 or 2 vectors of 16 queries.
struct Tile {
  float* qt;  // (D, kBq): queries of the tile, transposed and pre-scaled
  float* st;  // (kBk, kBq): scores, then probabilities, of the current key block, transposed
  float* ot;  // (D, kBq): running numerator, transposed
  alignas(64) int32_t b0[kBq], e0[kBq], b1[kBq], e1[kBq];  // spans of the rows (empty for padding rows)
  __m512 m[2], l[2];                                        // running max and sum per row
};

// st rows [j, j + 8) (R vectors each) = k rows j.. (8 pointers, D floats) · qt (D, kBq).
template <int R>
inline void scores_8(float* st, const float* const* kr, const float* qt, int D) {
  __m512 a[kKg][R];
#pragma GCC unroll 8
  for (int j = 0; j < kKg; ++j)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) a[j][r] = _mm512_setzero_ps();
  for (int d = 0; d < D; ++d) {
    __m512 qv[R];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) qv[r] = _mm512_load_ps(qt + d * kBq + 16 * r);
#pragma GCC unroll 8
    for (int j = 0; j < kKg; ++j) {
      const __m512 kv = _mm512_set1_ps(kr[j][d]);
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) a[j][r] = _mm512_fmadd_ps(kv, qv[r], a[j][r]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < kKg; ++j)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) _mm512_store_ps(st + j * kBq + 16 * r, a[j][r]);
}

// ot rows [d0, d0 + DG) += Σ_{j in [jl, jh)} v[j][d0..] · st[j] (v: key rows of this kv head from the block
// start, stride ldv).
template <int R, int DG>
inline void pv_rows(float* ot, const float* st, const float* v, int64_t ldv, int jl, int jh) {
  __m512 a[DG][R];
#pragma GCC unroll 8
  for (int i = 0; i < DG; ++i)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) a[i][r] = _mm512_load_ps(ot + i * kBq + 16 * r);
  for (int j = jl; j < jh; ++j) {
    __m512 p[R];
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) p[r] = _mm512_load_ps(st + j * kBq + 16 * r);
    const float* vr = v + j * ldv;
#pragma GCC unroll 8
    for (int i = 0; i < DG; ++i) {
      const __m512 vv = _mm512_set1_ps(vr[i]);
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r) a[i][r] = _mm512_fmadd_ps(vv, p[r], a[i][r]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < DG; ++i)
#pragma GCC unroll 2
    for (int r = 0; r < R; ++r) _mm512_store_ps(ot + i * kBq + 16 * r, a[i][r]);
}

template <int R>
void pv_block(Tile& tl, const float* v, int64_t ldv, int D, int jl, int jh) {
  int d0 = 0;
  for (; d0 + kKg <= D; d0 += kKg) pv_rows<R, kKg>(tl.ot + d0 * kBq, tl.st, v + d0, ldv, jl, jh);
  for (; d0 < D; ++d0) pv_rows<R, 1>(tl.ot + d0 * kBq, tl.st, v + d0, ldv, jl, jh);
}


// Online softmax over keys [jl, jh) of the block: new running max, p = exp(s - max) in place, running sum, and
// the numerator rescaled. Rows that have seen no key yet keep max -inf and get p = 0.
template <int R>
void softmax_block(Tile& tl, int D, int jl, int jh) {
  for (int r = 0; r < R; ++r) {
    __m512 mx = tl.m[r];
    for (int j = jl; j < jh; ++j) mx = _mm512_max_ps(mx, _mm512_load_ps(tl.st + j * kBq + 16 * r));
    const __m512 shift = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(mx, _mm512_set1_ps(kNegInf), _CMP_NEQ_OQ), mx);
    const __m512 alpha = vec::exp512(_mm512_sub_ps(tl.m[r], shift));  // 0 while the old max is -inf
    __m512 sum = _mm512_setzero_ps();
    for (int j = jl; j < jh; ++j) {
      float* s = tl.st + j * kBq + 16 * r;
      const __m512 p = vec::exp512(_mm512_sub_ps(_mm512_load_ps(s), shift));
      _mm512_store_ps(s, p);
      sum = _mm512_add_ps(sum, p);
    }
    tl.l[r] = _mm512_fmadd_ps(tl.l[r], alpha, sum);
    tl.m[r] = mx;
    for (int d = 0; d < D; ++d) {
      float* o = tl.ot + d * kBq + 16 * r;
      _mm512_store_ps(o, _mm512_mul_ps(_mm512_load_ps(o), alpha));
    }
  }
}

// One key block [j0, j0 + kBk) of a tile; kv points at this kv head's key 0 (k and v rows at stride ld).
template <int R>
void tile_block(Tile& tl, const float* k, const float* v, const Dims& d, int j0, uint64_t any, bool full) {
  const int jl = std::countr_zero(any), jh = kBk - std::countl_zero(any);
  const int jh8 = std::min(kBk, (jh + kKg - 1) / kKg * kKg);
  for (int j = jl / kKg * kKg; j < jh8; j += kKg) {
    const float* kr[kKg];
    for (int i = 0; i < kKg; ++i) kr[i] = k + std::min(j0 + j + i, d.Tk - 1) * d.ld();
    scores_8<R>(tl.st + j * kBq, kr, tl.qt, d.D);
  }
  if (!full) mask_block<R>(tl, j0, jl, jh);
  softmax_block<R>(tl, d.D, jl, jh);
  pv_block<R>(tl, v + int64_t(j0) * d.ld(), d.ld(), d.D, jl, jh);
}

// Loads the tile's queries (transposed, times scale) and spans; padding rows get zeros and empty spans.
void load_tile(Tile& tl, const float* q, const KeySpan* spans, const Dims& d, int h, int t0, int nq) {
  for (int r = 0; r < kBq; ++r) {
    const KeySpan s = r < nq ? spans[t0 + r] : KeySpan{};
    tl.b0[r] = s.begin0, tl.e0[r] = s.end0, tl.b1[r] = s.begin1, tl.e1[r] = s.end1;
  }
  std::fill(tl.qt, tl.qt + d.D * kBq, 0.0f);
  for (int r = 0; r < nq; ++r) {
    const float* qr = q + (int64_t(t0 + r) * d.Hq + h) * d.D;
    for (int c = 0; c < d.D; ++c) tl.qt[c * kBq + r] = qr[c] * d.scale;
  }
  std::fill(tl.ot, tl.ot + d.D * kBq, 0.0f);
  tl.m[0] = tl.m[1] = _mm512_set1_ps(kNegInf);
  tl.l[0] = tl.l[1] = _mm512_setzero_ps();
}

// One head h, queries [t0, t0 + nq).
void attend_tile(Tile& tl, float* out, float* lse, const float* q, const float* k, const float* v,
                 const KeySpan* spans, const Dims& d, int h, int t0) {
  const int nq = std::min(kBq, d.Tq - t0);
  const int64_t kv = int64_t(h / (d.Hq / d.Hkv)) * d.D;
  load_tile(tl, q, spans, d, h, t0, nq);
  for_each_key_block(tl, nq, [&](int j0, uint64_t any, bool full) {
    if (nq > 16) tile_block<2>(tl, k + kv, v + kv, d, j0, any, full);
    else tile_block<1>(tl, k + kv, v + kv, d, j0, any, full);
  });
  store_tile(tl, out, lse, d, h, t0, nq);
}

// This thread's 64-byte aligned scratch of at least `bytes`, grow-only (no allocation per step once warm).
float* tile_buffer(size_t bytes) {
  thread_local std::vector<float> buf;
  if (buf.size() < bytes / sizeof(float) + 16) buf.resize(bytes / sizeof(float) + 16);
  const auto at = reinterpret_cast<uintptr_t>(buf.data());
  return buf.data() + ((64 - at % 64) % 64) / sizeof(float);
}

void attention_tiled(float* out, float* lse, const float* q, const float* k, const float* v, const KeySpan* spans,
                     const Dims& d) {
  const int tiles = (d.Tq + kBq - 1) / kBq;
  const int64_t units = int64_t(d.Hq) * tiles;
#pragma omp parallel if (units > 1)
  {
    Tile tl;
    tl.qt = tile_buffer(sizeof(float) * kBq * (2 * d.D + kBk)), tl.ot = tl.qt + d.D * kBq, tl.st = tl.ot + d.D * kBq;
    // Tiles in the order 0, n-1, 1, n-2, ... dealt out two at a time: under a causal mask each thread gets pairs of
    // short and long tiles, so the work is balanced.
#pragma omp for schedule(static, 2)
    for (int64_t u = 0; u < units; ++u) {
      const int i = int(u % tiles), tile = i % 2 == 0 ? i / 2 : tiles - 1 - i / 2;
      attend_tile(tl, out, lse, q, k, v, spans, d, int(u / tiles), tile * kBq);
    }
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
  attn::check_spans(spans, Tq, Tk, "attention_forward");
  const Dims d{Tq, Tk, Hq, Hkv, D, scale};
#if defined(__AVX512F__)
  if (Tq > attn::kDirectMaxTq) return attention_tiled(out, lse, q, k, v, spans, d);
#endif
  attention_direct(out, lse, q, k, v, spans, d);
}

void attention_forward_rows(float* out, float* lse, const float* q, const float* k, const float* v,
                            const KeySpan* spans, int Tq, int Tk, int Hq, int Hkv, int D, float scale) {
  check(Tq >= 0 && Tk > 0 && Hkv > 0 && Hq > 0 && Hq % Hkv == 0 && D > 0,
        "attention_forward_rows: Tq {} Tk {} Hq {} Hkv {} D {}; expected positive sizes with Hq a multiple of Hkv",
        Tq, Tk, Hq, Hkv, D);
  attn::check_spans(spans, Tq, Tk, "attention_forward_rows");
  attention_direct(out, lse, q, k, v, spans, Dims{Tq, Tk, Hq, Hkv, D, scale});
}

}  // namespace unmask
