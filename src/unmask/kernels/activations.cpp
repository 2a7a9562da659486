#include "unmask/kernels/activations.h"

#include <cmath>

#include "unmask/kernels/vec_math.h"

namespace unmask {

namespace {

constexpr int64_t kChunk = 4096;  // elements per parallel work item

// out (n) = silu(g) · (up ? up : 1), n <= kChunk.
void silu_chunk(float* out, const float* g, const float* up, int64_t n) {
#if defined(__AVX512F__)
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 k = vec::tail_mask(n - i);
    __m512 x = _mm512_maskz_loadu_ps(k, g + i);
    __m512 e = vec::exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
    __m512 y = _mm512_div_ps(x, _mm512_add_ps(one, e));
    if (up) y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(k, up + i));
    _mm512_mask_storeu_ps(out + i, k, y);
  }
#else
  for (int64_t i = 0; i < n; ++i) {
    float y = g[i] / (1.0f + std::exp(-g[i]));
    out[i] = up ? y * up[i] : y;
  }
#endif
}

void silu_all(float* out, const float* g, const float* up, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t i = c * kChunk, len = n - i < kChunk ? n - i : kChunk;
    silu_chunk(out + i, g + i, up ? up + i : nullptr, len);
  }
}

}  // namespace

// x (n) -> out (n).
void silu_forward(float* out, const float* x, int64_t n) { silu_all(out, x, nullptr, n); }

// gate (n), up (n) -> out (n).
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) { silu_all(out, gate, up, n); }

}  // namespace unmask
