// Attention backward, flash-attention style: P is recomputed tile by tile from q, k and the lse the forward stored,
// never materialised whole. With Dᵢ = dOᵢ·Oᵢ, P = exp(scale·q·kᵀ - lse), dS = P ⊙ (dO·vᵀ - Dᵢ):
//   dq = scale·dS·K (=),   dk += scale·dSᵀ·Q,   dv += Pᵀ·dO.
// Determinism without atomics: two passes over 64 × 64 tiles, each output element owned by one work unit.
//   pass 1, unit (kv head g, key tile): dk, dv of those keys, summing over the group's query heads, then query
//           tiles, in order (computes S, dP, dV, dK: 4 tile products);
//   pass 2, unit (query head h, query tile): dq of those queries, summing over key tiles in order (S, dP, dQ: 3).
// So 7 tile products against the 5 of a one-pass kernel with atomics: the price of bit-identical results whatever
// the thread count. Every tile product is one micro-kernel, C (rows × 64) += A (rows × K, read in place through
// strides, broadcast) · B (K × 64, packed or computed). Only tiles holding a visible (query, key) pair are visited;
// in pass 2 only the hull of visible keys of a tile is read, so K and V rows between visible keys must be finite.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/backward.h"
#include "unmask/kernels/vec_math.h"

namespace unmask {

namespace {

constexpr int kB = 64;  // keys per key tile and queries per query tile; B matrices are kB wide

struct Dims {
  int Tq, Tk, Hq, Hkv, D;
  float scale;
  int64_t ldq() const { return int64_t(Hq) * D; }   // stride between query rows
  int64_t ldk() const { return int64_t(Hkv) * D; }  // stride between key rows
  int group() const { return Hq / Hkv; }
};

// Bit j of the result: key j0 + j lies in [b, e).
inline uint64_t range_bits(int b, int e, int j0) {
  const int lo = std::max(b, j0) - j0, hi = std::min(e, j0 + kB) - j0;
  if (hi <= lo) return 0;
  const uint64_t w = uint64_t(hi - lo);
  return (w == 64 ? ~0ull : (1ull << w) - 1) << lo;
}
inline uint64_t span_bits(const KeySpan& s, int j0) {
  return range_bits(s.begin0, s.end0, j0) | range_bits(s.begin1, s.end1, j0);
}

// C rows [0, R) (kB floats each, contiguous) (+)= Σ_{k < K} A[r·ar + k·ak] · B[k·kB .. k·kB + kB).
template <int R>
inline void mm_rows(float* C, const float* A, int64_t ar, int64_t ak, const float* B, int K, bool acc) {
#if defined(__AVX512F__)
  __m512 c[R][4];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) c[r][v] = acc ? _mm512_load_ps(C + r * kB + 16 * v) : _mm512_setzero_ps();
  for (int k = 0; k < K; ++k) {
    const float* b = B + int64_t(k) * kB;
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16), b2 = _mm512_load_ps(b + 32),
                 b3 = _mm512_load_ps(b + 48);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * ar + k * ak]);
      c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]), c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
      c[r][2] = _mm512_fmadd_ps(a, b2, c[r][2]), c[r][3] = _mm512_fmadd_ps(a, b3, c[r][3]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) _mm512_store_ps(C + r * kB + 16 * v, c[r][v]);
#else
  for (int r = 0; r < R; ++r) {
    float* c = C + r * kB;
    if (!acc) std::fill(c, c + kB, 0.0f);
    for (int k = 0; k < K; ++k) {
      const float a = A[r * ar + k * ak], *b = B + int64_t(k) * kB;
#pragma omp simd
      for (int n = 0; n < kB; ++n) c[n] += a * b[n];
    }
  }
#endif
}

// The same for any number of rows, four at a time.
void mm(float* C, const float* A, int64_t ar, int64_t ak, const float* B, int K, int rows, bool acc) {
  int r = 0;
  for (; r + 4 <= rows; r += 4) mm_rows<4>(C + r * kB, A + r * ar, ar, ak, B, K, acc);
  switch (rows - r) {
    case 3: mm_rows<3>(C + r * kB, A + r * ar, ar, ak, B, K, acc); break;
    case 2: mm_rows<2>(C + r * kB, A + r * ar, ar, ak, B, K, acc); break;
    case 1: mm_rows<1>(C + r * kB, A + r * ar, ar, ak, B, K, acc); break;
    default: break;
  }
}

// One row of a tile, kB lanes, in place: s <- p = (bit n of vis) ? exp(scale·s - lse) : 0, dp <- p·(dp - Dᵢ)
// (0 outside vis, even where a masked score or dP is not finite).
// lse and Dᵢ are per lane (step 1) or one value for the row (step 0).
void softmax_grad_row(float* s, float* dp, const float* lse, const float* di, int step, uint64_t vis, float scale) {
#if defined(__AVX512F__)
  const __m512 sc = _mm512_set1_ps(scale);
  for (int v = 0; v < 4; ++v) {
    const __mmask16 m = __mmask16(vis >> (16 * v));
    const __m512 l = step ? _mm512_load_ps(lse + 16 * v) : _mm512_set1_ps(lse[0]);
    const __m512 d = step ? _mm512_load_ps(di + 16 * v) : _mm512_set1_ps(di[0]);
    const __m512 p = _mm512_maskz_mov_ps(m, vec::exp512(_mm512_fmsub_ps(_mm512_load_ps(s + 16 * v), sc, l)));
    _mm512_store_ps(s + 16 * v, p);
    _mm512_store_ps(dp + 16 * v, _mm512_maskz_mul_ps(m, p, _mm512_sub_ps(_mm512_load_ps(dp + 16 * v), d)));
  }
#else
  for (int n = 0; n < kB; ++n) {
    const bool in = (vis >> n) & 1;
    const float p = in ? std::exp(scale * s[n] - lse[n * step]) : 0.0f;
    s[n] = p;
    dp[n] = in ? p * (dp[n] - di[n * step]) : 0.0f;
  }
#endif
}

// Per-thread scratch, 64-byte aligned: two packed (D, kB) operands, one or two (D, kB) accumulators, the score
// and dP tiles (kB, kB), and per-lane lse / D / visibility.
struct Scratch {
  std::unique_ptr<float, decltype(&std::free)> buf{nullptr, &std::free};
  float *b0, *b1, *acc0, *acc1, *s, *dp, *lse, *di;
  uint64_t vis[kB];
  explicit Scratch(int D) {
    const size_t tile = size_t(D) * kB, n = 4 * tile + 2 * kB * kB + 2 * kB;
    buf.reset(static_cast<float*>(std::aligned_alloc(64, n * sizeof(float))));
    check(buf != nullptr, "attention_backward: cannot allocate {} bytes of scratch", n * sizeof(float));
    b0 = buf.get(), b1 = b0 + tile, acc0 = b1 + tile, acc1 = acc0 + tile, s = acc1 + tile, dp = s + kB * kB;
    lse = dp + kB * kB, di = lse + kB;
  }
};

// dst (D, kB) = rows [0, n) of src (stride ld, D floats each) transposed, zero-padded to kB columns.
void pack_t(float* dst, const float* src, int64_t ld, int n, int D) {
  std::fill(dst, dst + int64_t(D) * kB, 0.0f);
  for (int j = 0; j < n; ++j)
    for (int d = 0; d < D; ++d) dst[d * kB + j] = src[j * ld + d];
}

struct Args {
  const float *dout, *q, *k, *v, *lse, *di;  // di (Tq, Hq) = Σ_d dout·out
  const KeySpan* spans;
  Dims d;
};

// Pass 1, one query tile [i0, i0 + nq) of query head h against the key tile packed in sc (kt, vt): accumulates
// dVt += dOᵀ·P and dKt += Qᵀ·dS (both (D, kB)) over the tile's rows that see any key of the tile.
void dkdv_tile(Scratch& sc, const Args& a, int h, int i0, int nq, int j0) {
  const Dims& d = a.d;
  int il = nq, ih = 0;
  for (int i = 0; i < nq; ++i)
    if ((sc.vis[i] = span_bits(a.spans[i0 + i], j0))) il = std::min(il, i), ih = i + 1;
  if (il >= ih) return;
  const int n = ih - il;
  const float *q = a.q + (int64_t(i0 + il) * d.Hq + h) * d.D, *g = a.dout + (int64_t(i0 + il) * d.Hq + h) * d.D;
  mm(sc.s, q, d.ldq(), 1, sc.b0, d.D, n, false);   // S (n, kB) = Q · Kᵀ
  mm(sc.dp, g, d.ldq(), 1, sc.b1, d.D, n, false);  // dP (n, kB) = dO · Vᵀ
  for (int i = 0; i < n; ++i) {
    const int64_t row = int64_t(i0 + il + i) * d.Hq + h;
    softmax_grad_row(sc.s + i * kB, sc.dp + i * kB, a.lse + row, a.di + row, 0, sc.vis[il + i], d.scale);
  }
  mm(sc.acc1, g, 1, d.ldq(), sc.s, n, d.D, true);   // dVt (D, kB) += dOᵀ · P
  mm(sc.acc0, q, 1, d.ldq(), sc.dp, n, d.D, true);  // dKt (D, kB) += Qᵀ · dS
}

// Pass 1 unit: kv head g, keys [j0, j0 + nk) -> dk, dv +=.
void dkdv_unit(Scratch& sc, const Args& a, float* dk, float* dv, int g, int j0) {
  const Dims& d = a.d;
  const int nk = std::min(kB, d.Tk - j0);
  const int64_t kv = int64_t(j0) * d.ldk() + int64_t(g) * d.D;
  pack_t(sc.b0, a.k + kv, d.ldk(), nk, d.D);
  pack_t(sc.b1, a.v + kv, d.ldk(), nk, d.D);
  std::fill(sc.acc0, sc.acc0 + int64_t(d.D) * kB, 0.0f);
  std::fill(sc.acc1, sc.acc1 + int64_t(d.D) * kB, 0.0f);
  for (int h = g * d.group(); h < (g + 1) * d.group(); ++h)
    for (int i0 = 0; i0 < d.Tq; i0 += kB) dkdv_tile(sc, a, h, i0, std::min(kB, d.Tq - i0), j0);
  for (int j = 0; j < nk; ++j)
    for (int c = 0; c < d.D; ++c) {
      dk[kv + j * d.ldk() + c] += d.scale * sc.acc0[c * kB + j];
      dv[kv + j * d.ldk() + c] += sc.acc1[c * kB + j];
    }
}

// Pass 2, the query tile packed in sc (qt, dot, lse, di) against keys [j0, j0 + kB): dQt (D, kB) += Kᵀ·dSᵀ, over
// the hull of the keys its queries see.
void dq_tile(Scratch& sc, const Args& a, int h, int i0, int nq, int j0) {
  const Dims& d = a.d;
  uint64_t qbits[kB], any = 0;
  for (int i = 0; i < nq; ++i) any |= qbits[i] = span_bits(a.spans[i0 + i], j0);
  if (!any) return;
  const int jl = std::countr_zero(any), jh = kB - std::countl_zero(any), n = jh - jl;
  for (int j = jl; j < jh; ++j) {
    uint64_t bits = 0;
    for (int i = 0; i < nq; ++i) bits |= ((qbits[i] >> j) & 1) << i;
    sc.vis[j - jl] = bits;
  }
  const int64_t kv = int64_t(j0 + jl) * d.ldk() + int64_t(h / d.group()) * d.D;
  mm(sc.s, a.k + kv, d.ldk(), 1, sc.b0, d.D, n, false);   // Sᵀ (n, kB) = K · Qᵀ
  mm(sc.dp, a.v + kv, d.ldk(), 1, sc.b1, d.D, n, false);  // dPᵀ (n, kB) = V · dOᵀ
  for (int j = 0; j < n; ++j) softmax_grad_row(sc.s + j * kB, sc.dp + j * kB, sc.lse, sc.di, 1, sc.vis[j], d.scale);
  mm(sc.acc0, a.k + kv, 1, d.ldk(), sc.dp, n, d.D, true);  // dQt (D, kB) += Kᵀ · dSᵀ
}

// Pass 2 unit: query head h, queries [i0, i0 + nq) -> dq =.
void dq_unit(Scratch& sc, const Args& a, float* dq, int h, int i0) {
  const Dims& d = a.d;
  const int nq = std::min(kB, d.Tq - i0);
  const int64_t at = int64_t(i0) * d.ldq() + int64_t(h) * d.D;
  pack_t(sc.b0, a.q + at, d.ldq(), nq, d.D);
  pack_t(sc.b1, a.dout + at, d.ldq(), nq, d.D);
  for (int i = 0; i < kB; ++i) {
    const bool in = i < nq;
    sc.lse[i] = in ? a.lse[int64_t(i0 + i) * d.Hq + h] : 0.0f;
    sc.di[i] = in ? a.di[int64_t(i0 + i) * d.Hq + h] : 0.0f;
  }
  std::fill(sc.acc0, sc.acc0 + int64_t(d.D) * kB, 0.0f);
  for (int j0 = 0; j0 < d.Tk; j0 += kB) dq_tile(sc, a, h, i0, nq, j0);
  for (int i = 0; i < nq; ++i)
    for (int c = 0; c < d.D; ++c) dq[at + i * d.ldq() + c] = d.scale * sc.acc0[c * kB + i];
}

void check_args(const KeySpan* spans, const Dims& d) {
  check(d.Tq >= 0 && d.Tk > 0 && d.Hkv > 0 && d.Hq > 0 && d.Hq % d.Hkv == 0 && d.D > 0,
        "attention_backward: Tq {} Tk {} Hq {} Hkv {} D {}; expected positive sizes with Hq a multiple of Hkv", d.Tq,
        d.Tk, d.Hq, d.Hkv, d.D);
  for (int i = 0; i < d.Tq; ++i) {
    const KeySpan& s = spans[i];
    const bool ok0 = s.begin0 == s.end0 || (0 <= s.begin0 && s.begin0 < s.end0 && s.end0 <= d.Tk);
    const bool ok1 = s.begin1 == s.end1 || (0 <= s.begin1 && s.begin1 < s.end1 && s.end1 <= d.Tk);
    const bool both = s.begin0 < s.end0 && s.begin1 < s.end1;
    check(ok0 && ok1 && (!both || s.end0 <= s.begin1) && (s.end0 > s.begin0 || s.end1 > s.begin1),
          "attention_backward: query {} sees keys [{}, {}) + [{}, {}); expected disjoint ordered ranges in "
          "[0, Tk = {}) holding at least one key", i, s.begin0, s.end0, s.begin1, s.end1, d.Tk);
  }
}

}  // namespace

// dout, q, out (Tq, Hq, D), k, v (Tk, Hkv, D), lse (Tq, Hq), spans (Tq) -> dq (Tq, Hq, D) =, dk, dv (Tk, Hkv, D) +=.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const KeySpan* spans, int Tq, int Tk,
                        int Hq, int Hkv, int D, float scale) {
  const Dims d{Tq, Tk, Hq, Hkv, D, scale};
  check_args(spans, d);
  if (Tq == 0) return;
  std::vector<float> di(size_t(Tq) * Hq);
  const Args a{dout, q, k, v, lse, di.data(), spans, d};
  const int qtiles = (Tq + kB - 1) / kB, ktiles = (Tk + kB - 1) / kB;
  const int64_t units1 = int64_t(Hkv) * ktiles, units2 = int64_t(Hq) * qtiles;
  const bool par = units1 + units2 > 2 && int64_t(Tq) * Tk * Hq * D >= (int64_t(1) << 16);
#pragma omp parallel if (par)
  {
    Scratch sc(D);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < int64_t(Tq) * Hq; ++r) {
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int c = 0; c < D; ++c) s += dout[r * D + c] * out[r * D + c];
      di[r] = s;
    }
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t u = 0; u < units1; ++u) dkdv_unit(sc, a, dk, dv, int(u / ktiles), int(u % ktiles) * kB);
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < units2; ++u) dq_unit(sc, a, dq, int(u / qtiles), int(u % qtiles) * kB);
  }
}

}  // namespace unmask
