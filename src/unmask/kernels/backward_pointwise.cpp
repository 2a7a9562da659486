// Backward passes of the row-wise and element-wise kernels: embedding, RMSNorm, RoPE, SwiGLU.
// Determinism: every output element is produced by one thread in a fixed order. Reductions over rows (dtable,
// dw) are split by columns, never by rows, so each column sums its rows in order t = 0, 1, … whatever the thread
// count.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/backward.h"
#include "unmask/kernels/vec_math.h"

namespace unmask {

namespace {

constexpr int kColChunk = 128;       // columns per work item of a row reduction
constexpr int64_t kChunk = 4096;     // elements per work item of an element-wise kernel
constexpr int64_t kParallelMin = 32768;  // below this many elements, one thread

}  // namespace

// dtable (V, C) += dout (T, C) scattered by tokens (T). Split by column chunks: each chunk adds the rows in order.
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int T, int V, int C) {
  for (int t = 0; t < T; ++t)
    check(tokens[t] >= 0 && tokens[t] < V,
          "embedding_backward: token id {} at position {} is outside the vocabulary [0, {})", tokens[t], t, V);
  const int chunks = (C + kColChunk - 1) / kColChunk;
#pragma omp parallel for schedule(static) if (chunks > 1 && int64_t(T) * C >= kParallelMin)
  for (int ch = 0; ch < chunks; ++ch) {
    const int c0 = ch * kColChunk, c1 = std::min(C, c0 + kColChunk);
    for (int t = 0; t < T; ++t) {
      float* d = dtable + int64_t(tokens[t]) * C;
      const float* g = dout + int64_t(t) * C;
#pragma omp simd
      for (int c = c0; c < c1; ++c) d[c] += g[c];
    }
  }
}

// dout (T, C), x (T, C), w (C), rstd (T) -> dx (T, C) +=, dw (C) +=. dx by rows, dw by column chunks.
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      int T, int C, float eps) {
  const bool par = int64_t(T) * C >= kParallelMin;
#pragma omp parallel for schedule(static) if (par)
  for (int t = 0; t < T; ++t) {
    const float *g = dout + int64_t(t) * C, *xr = x + int64_t(t) * C;
    float* d = dx + int64_t(t) * C;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int c = 0; c < C; ++c) dot += g[c] * w[c] * xr[c];
    const float r = rstd[t], k = r * r * r / float(C) * dot;
#pragma omp simd
    for (int c = 0; c < C; ++c) d[c] += r * w[c] * g[c] - k * xr[c];
  }
  const int chunks = (C + kColChunk - 1) / kColChunk;
#pragma omp parallel for schedule(static) if (par && chunks > 1)
  for (int ch = 0; ch < chunks; ++ch) {
    const int c0 = ch * kColChunk, n = std::min(C, c0 + kColChunk) - c0;
    float acc[kColChunk] = {};
    for (int t = 0; t < T; ++t) {
      const float *g = dout + int64_t(t) * C + c0, *xr = x + int64_t(t) * C + c0;
      const float r = rstd[t];
#pragma omp simd
      for (int c = 0; c < n; ++c) acc[c] += g[c] * xr[c] * r;
    }
    for (int c = 0; c < n; ++c) dw[c0 + c] += acc[c];
  }
}

// A rotation's transpose is the rotation by the opposite angle: pos·θ^(-2i/D) with pos negated gives exactly the
// negated angle in double, whose cos is the same and whose sin is negated. So the forward kernel with -pos.
void rope_backward(float* dx, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta) {
  std::vector<int32_t> neg(T);
  for (int t = 0; t < T; ++t) {
    check(pos[t] != std::numeric_limits<int32_t>::min(), "rope_backward: position {} at row {} cannot be negated",
          pos[t], t);
    neg[t] = -pos[t];
  }
  rope_forward(dx, neg.data(), T, H, D, layout, theta);
}

namespace {

// One chunk of n <= kChunk elements: s = σ(g); dgate = dout·u·s·(1 + g·(1 - s)), dup = dout·g·s.
void swiglu_backward_chunk(float* dgate, float* dup, const float* dout, const float* gate, const float* up,
                           int64_t n) {
#if defined(__AVX512F__)
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = vec::tail_mask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(k, gate + i), u = _mm512_maskz_loadu_ps(k, up + i);
    const __m512 d = _mm512_maskz_loadu_ps(k, dout + i);
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, vec::exp512(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    const __m512 ds = _mm512_mul_ps(d, s);  // dout·σ(g)
    const __m512 dsilu = _mm512_fmadd_ps(g, _mm512_sub_ps(one, s), one);
    _mm512_mask_storeu_ps(dgate + i, k, _mm512_mul_ps(_mm512_mul_ps(ds, u), dsilu));
    _mm512_mask_storeu_ps(dup + i, k, _mm512_mul_ps(ds, g));
  }
#else
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], u = up[i], s = 1.0f / (1.0f + std::exp(-g)), ds = dout[i] * s;
    dgate[i] = ds * u * (1.0f + g * (1.0f - s));
    dup[i] = ds * g;
  }
#endif
}

}  // namespace

// dout (n), gate (n), up (n) -> dgate (n) =, dup (n) =. Element i is read before it is written, so dgate may
// alias gate and dup may alias up.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1 && n >= kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i = c * kChunk, len = std::min(kChunk, n - i);
    swiglu_backward_chunk(dgate + i, dup + i, dout + i, gate + i, up + i, len);
  }
}

}  // namespace unmask
