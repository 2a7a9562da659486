// Internal to kernels/: vectorised exp and row helpers shared by softmax, activations and attention.
// AVX-512 where the build targets it, plain loops otherwise. No fast-math: -inf, +inf and NaN behave as std::exp.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__AVX512F__)
// g++ 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized (GCC PR105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace unmask::vec {

#if defined(__AVX512F__)
// exp(x) for 16 lanes, Cephes expf polynomial: about 1 ulp for normal results (measured against double in the
// tests). x is clamped to [-104, 89] first (exp(-104) rounds to 0, exp(89) overflows to inf through scalef), so
// ±inf give inf / 0 and NaN propagates (max/min return their second operand, x, when it is NaN).
inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

inline __mmask16 tail_mask(int64_t remaining) {
  return remaining >= 16 ? __mmask16(0xffff) : __mmask16((1u << remaining) - 1u);
}
#endif

// max over x (n), -inf for n == 0.
inline float max_of(const float* x, int64_t n) {
#if defined(__AVX512F__)
  __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 k = tail_mask(n - i);
    m = _mm512_mask_max_ps(m, k, m, _mm512_maskz_loadu_ps(k, x + i));
  }
  return _mm512_reduce_max_ps(m);
#else
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
#endif
}

// out (n) = exp(x - shift); returns the sum of out, accumulated in 16 f32 lanes then reduced in a fixed order.
// out may alias x.
inline float exp_shift_sum(float* out, const float* x, int64_t n, float shift) {
#if defined(__AVX512F__)
  __m512 s = _mm512_setzero_ps(), sh = _mm512_set1_ps(shift);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 k = tail_mask(n - i);
    __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), sh));
    e = _mm512_maskz_mov_ps(k, e);
    _mm512_mask_storeu_ps(out + i, k, e);
    s = _mm512_add_ps(s, e);
  }
  return _mm512_reduce_add_ps(s);
#else
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += (out[i] = std::exp(x[i] - shift));
  return s;
#endif
}

// x (n) *= a.
inline void scale(float* x, int64_t n, float a) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

}  // namespace unmask::vec
