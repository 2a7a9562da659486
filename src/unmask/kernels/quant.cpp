// Quantized blocks: ggml's reference quantization, AVX-512 dequantization and VNNI dot products.
// The activations x are quantized to int8 (Q8: 32 values and one f32 scale per block, with the block sums) so a
// row dot is Σ_blocks scale_w · scale_x · (integer dot); _mm512_dpbusd_epi32 takes unsigned × signed bytes, so the
// weights go in as unsigned codes (Q4_0: q, Q4_K: q, Q6_K: q + 32) and the offset is taken out with the x sums.
#include "unmask/kernels/quant.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "unmask/base/error.h"

namespace unmask {
namespace {

constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even (ggml's nearest_int; |v| < 2^22).
inline int nearest_int(float v) {
  float f = v + 12582912.f;
  int i;
  std::memcpy(&i, &f, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// ---- reference quantization (ggml quantize_row_*_ref) ----

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) y[b].qs[j] = int8_t(std::round(x[j] * id));
  }
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    float amax = 0, max = 0;  // max: the value of largest magnitude, with its sign
    for (int j = 0; j < 32; ++j)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
    const float d = max / -8.f, id = d != 0 ? 1.f / d : 0.f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < 16; ++j) {
      const uint8_t a = uint8_t(std::min(15, int(int8_t(x[j] * id + 8.5f))));
      const uint8_t c = uint8_t(std::min(15, int(int8_t(x[j + 16] * id + 8.5f))));
      y[b].qs[j] = uint8_t(a | (c << 4));
    }
  }
}

// Scale and min for n values in [0, nmax] with weights: x ≈ scale·L - the_min. Starts from the min/max grid and
// tries nstep+1 stretched grids, keeping the weighted least-squares fit of scale and min with the least error.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    min = std::min(min, x[i]);
    max = std::max(max, x[i]);
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, uint8_t(0));
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min), scale = 1 / iscale, best_err = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    const float diff = scale * L[i] + min - x[i];
    best_err += weights[i] * diff * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min))));
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; ++i) {
        const float diff = this_scale * Laux[i] + this_min - x[i];
        err += weights[i] * diff * diff;
      }
      if (err < best_err) {
        std::copy(Laux, Laux + n, L);
        best_err = err;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[256], Laux[32];
  float weights[32], mins[8], scales[8];
  for (int64_t b = 0; b < nb; ++b, x += 256) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
      scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    BlockQ4_K& o = y[b];
    std::memset(o.scales, 0, sizeof o.scales);
    for (int j = 0; j < 8; ++j) {
      const int ls = std::min(63, nearest_int(inv_scale * scales[j]));
      const int lm = std::min(63, nearest_int(inv_min * mins[j]));
      if (j < 4) {
        o.scales[j] = uint8_t(ls);
        o.scales[j + 4] = uint8_t(lm);
      } else {
        o.scales[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
        o.scales[j - 4] |= uint8_t((ls >> 4) << 6);
        o.scales[j] |= uint8_t((lm >> 4) << 6);
      }
    }
    o.d = f32_to_f16(max_scale / 63.f);
    o.dmin = f32_to_f16(max_min / 63.f);
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      scale_min_k4(j, o.scales, sc, m);
      const float d = f16_to_f32(o.d) * sc;
      if (d == 0) continue;
      const float dm = f16_to_f32(o.dmin) * m;
      for (int i = 0; i < 32; ++i)
        L[32 * j + i] = uint8_t(std::max(0, std::min(15, nearest_int((x[32 * j + i] + dm) / d))));
    }
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) o.qs[32 * j + l] = uint8_t(L[64 * j + l] | (L[64 * j + 32 + l] << 4));
  }
}

// Symmetric scale for n values in [-nmax, nmax-1], weights x² (rmse_type 1): tries 19 grids around nmax/max and
// keeps the least-squares scale with the largest Σwxl²/Σwl² (least weighted error).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  float iscale = -nmax / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.f, best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i)
        L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i]))));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  int8_t L[256];
  float scales[16];
  for (int64_t b = 0; b < nb; ++b, x += 256) {
    BlockQ6_K& o = y[b];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
      if (std::fabs(scales[ib]) > max_abs_scale) max_abs_scale = std::fabs(scales[ib]), max_scale = scales[ib];
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&o, 0, sizeof o);
      continue;
    }
    const float iscale = -128.f / max_scale;
    o.d = f32_to_f16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib) o.scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(o.d) * o.scales[j];
      if (d == 0) continue;
      for (int i = 0; i < 16; ++i)
        L[16 * j + i] = int8_t(std::max(-32, std::min(31, nearest_int(x[16 * j + i] / d))) + 32);
    }
    for (int h = 0; h < 2; ++h) {
      const int8_t* l8 = L + 128 * h;
      uint8_t* ql = o.ql + 64 * h;
      uint8_t* qh = o.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = uint8_t((l8[l] & 0xF) | ((l8[l + 64] & 0xF) << 4));
        ql[l + 32] = uint8_t((l8[l + 32] & 0xF) | ((l8[l + 96] & 0xF) << 4));
        qh[l] = uint8_t((l8[l] >> 4) | ((l8[l + 32] >> 4) << 2) | ((l8[l + 64] >> 4) << 4) | ((l8[l + 96] >> 4) << 6));
      }
    }
  }
}

// ---- activations: int8 blocks of 32 with an f32 scale and the block sum ----
struct Q8Act {
  std::vector<int8_t> q;     // n
  std::vector<float> d;      // n/32
  std::vector<int32_t> sum;  // n/32: Σ q over the block
  std::vector<int32_t> sum16;  // n/16
};

// Q8_0 / Q4_0 take one scale per 32 values (ggml's Q8_0); the K-quants one per 256 (ggml's Q8_K), stored here
// repeated per 32 so that one layout serves both.
void quantize_act(const float* x, int64_t n, int group, Q8Act& a) {
  a.q.resize(static_cast<size_t>(n));
  a.d.resize(size_t(n / 32));
  a.sum.resize(size_t(n / 32));
  a.sum16.resize(size_t(n / 16));
  for (int64_t g = 0; g < n; g += group) {
    float amax = 0;
    for (int j = 0; j < group; ++j) amax = std::max(amax, std::fabs(x[g + j]));
    const float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
    for (int j = 0; j < group; ++j) a.q[size_t(g + j)] = int8_t(nearest_int(x[g + j] * id));
    for (int j = 0; j < group; j += 32) a.d[size_t((g + j) / 32)] = d;
  }
  for (int64_t s = 0; s < n / 16; ++s) {
    int32_t t = 0;
    for (int j = 0; j < 16; ++j) t += a.q[size_t(16 * s + j)];
    a.sum16[size_t(s)] = t;
  }
  for (int64_t s = 0; s < n / 32; ++s) a.sum[size_t(s)] = a.sum16[size_t(2 * s)] + a.sum16[size_t(2 * s + 1)];
}

inline __m512i load2x256(const void* a, const void* b) {
  return _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_loadu_si256(static_cast<const __m256i*>(a))),
                            _mm256_loadu_si256(static_cast<const __m256i*>(b)), 1);
}

// One row, x already quantized.
float dot_q8_0(const BlockQ8_0* w, const Q8Act& a, int64_t nb) {
  __m512 acc = _mm512_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m512i wq = load2x256(w[b].qs, w[b + 1].qs);
    const __m512i xq = _mm512_loadu_si512(&a.q[size_t(32 * b)]);
    // |w| (unsigned) · (x with w's sign)
    const __m512i xs = _mm512_mask_sub_epi8(xq, _mm512_movepi8_mask(wq), _mm512_setzero_si512(), xq);
    const __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(wq), xs);
    const __m512 s = _mm512_insertf32x8(_mm512_set1_ps(f16_to_f32(w[b].d) * a.d[size_t(b)]),
                                        _mm256_set1_ps(f16_to_f32(w[b + 1].d) * a.d[size_t(b + 1)]), 1);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), s, acc);
  }
  float r = _mm512_reduce_add_ps(acc);
  for (; b < nb; ++b) {
    int32_t t = 0;
    for (int j = 0; j < 32; ++j) t += w[b].qs[j] * a.q[size_t(32 * b + j)];
    r += f16_to_f32(w[b].d) * a.d[size_t(b)] * float(t);
  }
  return r;
}

float dot_q4_0(const BlockQ4_0* w, const Q8Act& a, int64_t nb) {
  __m512 acc = _mm512_setzero_ps();
  int64_t b = 0;
  const __m256i m4 = _mm256_set1_epi8(0xF);
  for (; b + 2 <= nb; b += 2) {
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b + 1].qs));
    // per block: 16 low nibbles (values 0-15) then 16 high (values 16-31)
    const __m256i v0 = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q0, 4), q0), m4);
    const __m256i v1 = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q1, 4), q1), m4);
    const __m512i wq = _mm512_inserti64x4(_mm512_zextsi256_si512(v0), v1, 1);
    const __m512i xq = _mm512_loadu_si512(&a.q[size_t(32 * b)]);
    const __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, xq);
    // Σ (q - 8) x = Σ q x - 8 Σ x: the offset goes to lane 0 of each half (exact in int32)
    const __m512i corr = _mm512_maskz_mov_epi32(
        0x0101, _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_set1_epi32(8 * a.sum[size_t(b)])),
                                   _mm256_set1_epi32(8 * a.sum[size_t(b + 1)]), 1));
    const __m512 s = _mm512_insertf32x8(_mm512_set1_ps(f16_to_f32(w[b].d) * a.d[size_t(b)]),
                                        _mm256_set1_ps(f16_to_f32(w[b + 1].d) * a.d[size_t(b + 1)]), 1);
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(dp, corr)), s, acc);
  }
  float r = _mm512_reduce_add_ps(acc);
  for (; b < nb; ++b) {
    int32_t t = 0;
    for (int j = 0; j < 16; ++j)
      t += ((w[b].qs[j] & 0xF) - 8) * a.q[size_t(32 * b + j)] + ((w[b].qs[j] >> 4) - 8) * a.q[size_t(32 * b + j + 16)];
    r += f16_to_f32(w[b].d) * a.d[size_t(b)] * float(t);
  }
  return r;
}

float dot_q4_k(const BlockQ4_K* w, const Q8Act& a, int64_t nb) {
  float r = 0;
  const __m512i m4 = _mm512_set1_epi8(0xF);
  const __m512i half_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ4_K& blk = w[b];
    const int8_t* xq = &a.q[size_t(256 * b)];
    int sc[8], m[8];
    for (int j = 0; j < 8; ++j) scale_min_k4(j, blk.scales, sc[j], m[j]);
    __m512i acc = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {  // 64 values: low nibbles = sub-block 2c, high = 2c+1
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qs + 32 * c));
      const __m512i qq = _mm512_inserti64x4(_mm512_zextsi256_si512(q), _mm256_srli_epi16(q, 4), 1);
      const __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(qq, m4),
                                             _mm512_loadu_si512(xq + 64 * c));
      const __m512i scv = _mm512_permutexvar_epi32(half_idx, _mm512_zextsi128_si512(_mm_setr_epi32(sc[2 * c], sc[2 * c + 1], 0, 0)));
      acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(dp, scv));
    }
    int32_t msum = 0;
    for (int j = 0; j < 8; ++j) msum += m[j] * a.sum[size_t(8 * b + j)];
    const float dx = a.d[size_t(8 * b)];
    r += dx * (f16_to_f32(blk.d) * float(_mm512_reduce_add_epi32(acc)) - f16_to_f32(blk.dmin) * float(msum));
  }
  return r;
}

float dot_q6_k(const BlockQ6_K* w, const Q8Act& a, int64_t nb) {
  float r = 0;
  const __m512i m4 = _mm512_set1_epi8(0xF), m3 = _mm512_set1_epi8(3);
  const __m512i shift_lo = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);  // 0 | 2
  const __m512i shift_hi = _mm512_add_epi16(shift_lo, _mm512_set1_epi16(4));                      // 4 | 6
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ6_K& blk = w[b];
    const int8_t* xq = &a.q[size_t(256 * b)];
    const __m512i sc_all = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk.scales)));
    __m512i acc = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      const __m512i ql = _mm512_loadu_si512(blk.ql + 64 * h);
      const __m256i qh256 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk.qh + 32 * h));
      const __m512i qh = _mm512_inserti64x4(_mm512_zextsi256_si512(qh256), qh256, 1);
      for (int p = 0; p < 2; ++p) {  // p=0: values 0-63 of this half, p=1: values 64-127
        const __m512i lo4 = _mm512_and_si512(p == 0 ? ql : _mm512_srli_epi16(ql, 4), m4);
        const __m512i hi2 = _mm512_and_si512(_mm512_srlv_epi16(qh, p == 0 ? shift_lo : shift_hi), m3);
        const __m512i q = _mm512_or_si512(lo4, _mm512_slli_epi16(hi2, 4));  // 0..63
        const __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_loadu_si512(xq + 128 * h + 64 * p));
        const int c = 2 * h + p;  // 64-value chunk: scales 4c..4c+3, four lanes each
        const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(4 * c),
                                             _mm512_srli_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 2));
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(dp, _mm512_permutexvar_epi32(idx, sc_all)));
      }
    }
    int32_t off = 0;  // Σ sc_j · 32 · Σx over sub-block j
    for (int j = 0; j < 16; ++j) off += blk.scales[j] * a.sum16[size_t(16 * b + j)];
    r += a.d[size_t(8 * b)] * f16_to_f32(blk.d) * float(_mm512_reduce_add_epi32(acc) - 32 * off);
  }
  return r;
}

float dot_quantized(DType t, const void* w, const Q8Act& a, int64_t n) {
  switch (t) {
    case DType::Q8_0: return dot_q8_0(static_cast<const BlockQ8_0*>(w), a, n / 32);
    case DType::Q4_0: return dot_q4_0(static_cast<const BlockQ4_0*>(w), a, n / 32);
    case DType::Q4_K: return dot_q4_k(static_cast<const BlockQ4_K*>(w), a, n / 256);
    default: return dot_q6_k(static_cast<const BlockQ6_K*>(w), a, n / 256);
  }
}

void check_row(const char* what, DType t, int64_t n) {
  check(is_quant_dtype(t), "{}: {} is not a quantized type (Q4_0, Q8_0, Q4_K, Q6_K)", what, dtype_name(t));
  const int bs = dtype_info(t).block_size;
  check(n >= 0 && n % bs == 0, "{}: n = {} is not a multiple of the {} block size {}", what, n, dtype_name(t), bs);
}

}  // namespace

bool is_quant_dtype(DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_K || t == DType::Q6_K;
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  check_row("quantize_row", t, n);
  switch (t) {
    case DType::Q8_0: return quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), n / 32);
    case DType::Q4_0: return quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), n / 32);
    case DType::Q4_K: return quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), n / 256);
    default: return quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), n / 256);
  }
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
  check_row("dequantize_row", t, n);
  if (t == DType::Q8_0) {
    const BlockQ8_0* w = static_cast<const BlockQ8_0*>(src);
    for (int64_t b = 0; b < n / 32; ++b) {
      const __m512 d = _mm512_set1_ps(f16_to_f32(w[b].d));
      for (int k = 0; k < 2; ++k) {
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs + 16 * k));
        _mm512_storeu_ps(dst + 32 * b + 16 * k, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q))));
      }
    }
  } else if (t == DType::Q4_K) {
    const BlockQ4_K* w = static_cast<const BlockQ4_K*>(src);
    for (int64_t b = 0; b < n / 256; ++b) {
      const float d = f16_to_f32(w[b].d), dmin = f16_to_f32(w[b].dmin);
      for (int j = 0; j < 8; ++j) {
        int sc, m;
        scale_min_k4(j, w[b].scales, sc, m);
        const __m512 d1 = _mm512_set1_ps(d * float(sc)), m1 = _mm512_set1_ps(dmin * float(m));
        for (int k = 0; k < 2; ++k) {
          __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[b].qs + 32 * (j / 2) + 16 * k)));
          q = (j % 2 == 0) ? _mm512_and_si512(q, _mm512_set1_epi32(0xF)) : _mm512_srli_epi32(q, 4);
          _mm512_storeu_ps(dst + 256 * b + 32 * j + 16 * k, _mm512_sub_ps(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(q)), m1));
        }
      }
    }
  } else {
    ref::dequantize_row(t, src, dst, n);  // Q4_0 and Q6_K: not on a hot path yet
  }
}

float vec_dot(DType t, int64_t n, const void* w_row, const float* x) {
  check_row("vec_dot", t, n);
  Q8Act a;
  quantize_act(x, n, dtype_info(t).block_size, a);
  return dot_quantized(t, w_row, a, n);
}

void matvec(DType t, const void* w, int OC, int IC, const float* x, float* y) {
  check_row("matvec", t, IC);
  check(OC >= 0, "matvec: OC = {} is negative", OC);
  Q8Act a;
  quantize_act(x, IC, dtype_info(t).block_size, a);
  const size_t rb = row_bytes(t, IC);
  const uint8_t* base = static_cast<const uint8_t*>(w);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < OC; ++o) y[o] = dot_quantized(t, base + size_t(o) * rb, a, IC);
}

}  // namespace unmask
