// ggml's reference quantization (quantize_row_*_ref), the bytes llama-quantize writes when it has no importance
// matrix: for each block a scale (and a min or offset) from the block's values, then the codes rounded against the
// f16-rounded scales actually stored. The K-quants search the scales: make_qkx2_quants (scale and min, Q2_K, Q4_K,
// Q5_K), make_q3_quants (Q3_K) and make_qx_quants (Q6_K), each a weighted least-squares fit over a few grids.
// Every float expression keeps ggml's order of operations, so the bytes match ggml's where the compilers agree.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "unmask/base/error.h"
#include "unmask/kernels/quant.h"

namespace unmask {
namespace {

constexpr float kGroupMaxEps = 1e-15f;

inline int clamp_int(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// ---- blocks of 32: one scale (and a min) per block ----

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) y[b].qs[j] = int8_t(std::round(x[j] * id));
  }
}

// The value of largest magnitude, with its sign (the first of equal magnitudes).
float signed_absmax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j)
    if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
  return max;
}

// Q4_0 and Q5_0: d = max / -2^(bits-1), so the value of largest magnitude takes code 0; codes (int8 truncation of
// x/d + offset + 0.5, capped at 2^bits - 1) into q (32).
float symmetric_codes(const float* x, int bits, uint8_t* q) {
  const int half = 1 << (bits - 1);
  const float d = signed_absmax(x, 32) / float(-half), id = d != 0 ? 1.f / d : 0.f;
  for (int j = 0; j < 32; ++j) q[j] = uint8_t(std::min(2 * half - 1, int(int8_t(x[j] * id + (float(half) + 0.5f)))));
  return d;
}

// Q4_1 and Q5_1: d = (max - min) / (2^bits - 1), codes of (x - min)/d rounded half up into q (32).
float affine_codes(const float* x, int bits, float& min, uint8_t* q) {
  float max = -FLT_MAX;
  min = FLT_MAX;
  for (int j = 0; j < 32; ++j) min = std::min(min, x[j]), max = std::max(max, x[j]);
  const int top = (1 << bits) - 1;
  const float d = (max - min) / float(top), id = d != 0 ? 1.f / d : 0.f;
  for (int j = 0; j < 32; ++j) {
    const float v = (x[j] - min) * id + 0.5f;
    q[j] = bits == 4 ? uint8_t(std::min(top, int(int8_t(v)))) : uint8_t(v);  // as ggml: Q5_1 has no cap
  }
  return d;
}

// Codes (32, value order) into nibbles (value j low, j + 16 high) and, for 5-bit codes, bit 4 into qh.
void pack_32(const uint8_t* q, uint8_t* qs, uint8_t* qh) {
  uint32_t h = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = uint8_t((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
    h |= uint32_t((q[j] >> 4) & 1) << j;
    h |= uint32_t((q[j + 16] >> 4) & 1) << (j + 16);
  }
  if (qh) std::memcpy(qh, &h, 4);
}

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  uint8_t q[32];
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    y[b].d = f32_to_f16(symmetric_codes(x, 4, q));
    pack_32(q, y[b].qs, nullptr);
  }
}

void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
  uint8_t q[32];
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    y[b].d = f32_to_f16(symmetric_codes(x, 5, q));
    pack_32(q, y[b].qs, y[b].qh);
  }
}

// Q4_1 (qh null) and Q5_1.
template <class Block>
void quantize_affine(const float* x, Block* y, int64_t nb, int bits) {
  uint8_t q[32];
  for (int64_t b = 0; b < nb; ++b, x += 32) {
    float min;
    y[b].d = f32_to_f16(affine_codes(x, bits, min, q));
    y[b].m = f32_to_f16(min);
    if constexpr (std::is_same_v<Block, BlockQ5_1>) pack_32(q, y[b].qs, y[b].qh);
    else pack_32(q, y[b].qs, nullptr);
  }
}

// ---- the scale searches of the K-quants ----

// Scale and min for n values x ≈ scale·L - the_min with L in [0, nmax], weighted: starts from the min/max grid and
// tries nstep+1 stretched grids (nmax + rmin + rdelta·is levels over the range), keeping the weighted least-squares
// fit of scale and min with the least error (squared, or absolute when use_mad).
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
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
  const auto error = [&](float diff) { return use_mad ? std::fabs(diff) : diff * diff; };
  float iscale = nmax / (max - min), scale = 1 / iscale, best_err = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = uint8_t(clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax));
    best_err += weights[i] * error(scale * L[i] + min - x[i]);
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * (x[i] - min)), 0, nmax);
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
      for (int i = 0; i < n; ++i) err += weights[i] * error(this_scale * Laux[i] + this_min - x[i]);
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

// Symmetric scale for n values in [-nmax, nmax-1], weights x² (ggml's rmse_type 1): tries 19 grids around
// nmax/max and keeps the least-squares scale with the largest Σwxl²/Σwl² (least weighted error). L: codes + nmax.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  float iscale = -nmax / max, sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
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
      const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's search (do_rmse): codes in [-nmax, nmax-1] from the max grid, then up to 5 sweeps that move one code at a
// time to its least-squares level (weights x²) while that raises Σwxl²/Σwl². Returns the fitted scale; L: codes +
// nmax.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int sweep = 0; sweep < 5; ++sweep) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * L[i] * L[i];
      const int l = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (l == L[i]) continue;
      slx += w * x[i] * l;
      sl2 += w * l * l;
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = int8_t(l), sumlx = slx, suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.f ? sumlx / suml2 : 0.f;
}

// ---- K-quants ----

// 2-bit codes L (256) into Q2_K/Q3_K's qs (64): value 128h + 32s + l at bits 2s of qs[32h + l].
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* v = L + 128 * h + l;
      qs[32 * h + l] = uint8_t(v[0] | (v[32] << 2) | (v[64] << 4) | (v[96] << 6));
    }
}

void quantize_q2_k(const float* x, BlockQ2_K* y, int64_t nb) {
  uint8_t L[256], Laux[16];
  float weights[16], mins[16], scales[16];
  for (int64_t b = 0; b < nb; ++b, x += 256) {
    BlockQ2_K& o = y[b];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    // The 4-bit scales and mins as multiples of d = max_scale/15 and dmin = max_min/15 (nibbles of scales[j]).
    for (int j = 0; j < 16; ++j) o.scales[j] = max_scale > 0 ? uint8_t(nearest_int(15.f / max_scale * scales[j])) : 0;
    o.d = f32_to_f16(max_scale > 0 ? max_scale / 15.f : 0.f);
    if (max_min > 0)
      for (int j = 0; j < 16; ++j) o.scales[j] = uint8_t(o.scales[j] | (nearest_int(15.f / max_min * mins[j]) << 4));
    o.dmin = f32_to_f16(max_min > 0 ? max_min / 15.f : 0.f);
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(o.d) * float(o.scales[j] & 0xF);
      if (d == 0) continue;
      const float dm = f16_to_f32(o.dmin) * float(o.scales[j] >> 4);
      for (int i = 0; i < 16; ++i) L[16 * j + i] = uint8_t(clamp_int(nearest_int((x[16 * j + i] + dm) / d), 0, 3));
    }
    pack_2bit(L, o.qs);
  }
}

// Q3_K's 16 scales (codes - 32 of -32..31) into the 12 bytes q3_k_scales reads.
void pack_q3_k_scales(const int* l, uint8_t* s) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 16; ++j) {
    s[j % 8] = uint8_t(s[j % 8] | ((l[j] & 0xF) << (j < 8 ? 0 : 4)));
    s[8 + j % 4] = uint8_t(s[8 + j % 4] | ((l[j] >> 4) << (2 * (j / 4))));
  }
}

void quantize_q3_k(const float* x, BlockQ3_K* y, int64_t nb) {
  int8_t L[256];
  float scales[16];
  for (int64_t b = 0; b < nb; ++b, x += 256) {
    BlockQ3_K& o = y[b];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > amax) amax = std::fabs(scales[j]), max_scale = scales[j];
    }
    if (max_scale != 0) {
      const float iscale = -32.f / max_scale;
      int l[16];
      for (int j = 0; j < 16; ++j) l[j] = clamp_int(int8_t(nearest_int(iscale * scales[j])), -32, 31) + 32;
      pack_q3_k_scales(l, o.scales);
      o.d = f32_to_f16(1 / iscale);
    } else {
      std::memset(o.scales, 0, sizeof o.scales);
      o.d = f32_to_f16(0.f);
    }
    int8_t sc[16];
    q3_k_scales(o.scales, sc);
    for (int j = 0; j < 16; ++j) {
      const float d = f16_to_f32(o.d) * float(sc[j]);
      if (d == 0) continue;
      for (int i = 0; i < 16; ++i) L[16 * j + i] = int8_t(clamp_int(nearest_int(x[16 * j + i] / d), -4, 3) + 4);
    }
    // Bit 2 of value 128h + 32s + l into bit 4h + s of hmask[l]; the low 2 bits as Q2_K.
    uint8_t low[256];
    std::memset(o.hmask, 0, sizeof o.hmask);
    for (int i = 0; i < 256; ++i) {
      if (L[i] > 3) o.hmask[i % 32] = uint8_t(o.hmask[i % 32] | (1 << (i / 32)));
      low[i] = uint8_t(L[i] & 3);
    }
    pack_2bit(low, o.qs);
  }
}

// Q4_K and Q5_K: 8 sub-blocks of 32 fitted by make_qkx2_quants (codes 0..nmax, weights av|x| + |x_i|), their scales
// and mins stored as 6-bit multiples of d = max_scale/63 and dmin = max_min/63 (scale_min_k4's packing), and the
// codes L (256) recomputed against the stored scales.
void quantize_scale_min_k(const float* x, int nmax, float rmin, int nstep, uint16_t& d_out, uint16_t& dmin_out,
                          uint8_t* packed, uint8_t* L) {
  uint8_t Laux[32];
  float weights[32], mins[8], scales[8], max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  std::memset(packed, 0, 12);
  for (int j = 0; j < 8; ++j) {
    const int ls = std::min(63, int(uint8_t(nearest_int(inv_scale * scales[j]))));
    const int lm = std::min(63, int(uint8_t(nearest_int(inv_min * mins[j]))));
    if (j < 4) {
      packed[j] = uint8_t(ls);
      packed[j + 4] = uint8_t(lm);
    } else {
      packed[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
      packed[j - 4] |= uint8_t((ls >> 4) << 6);
      packed[j] |= uint8_t((lm >> 4) << 6);
    }
  }
  d_out = f32_to_f16(max_scale / 63.f);
  dmin_out = f32_to_f16(max_min / 63.f);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    scale_min_k4(j, packed, sc, m);
    const float d = f16_to_f32(d_out) * float(sc);
    if (d == 0) continue;
    const float dm = f16_to_f32(dmin_out) * float(m);
    for (int i = 0; i < 32; ++i) L[32 * j + i] = uint8_t(clamp_int(nearest_int((x[32 * j + i] + dm) / d), 0, nmax));
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[256];
  for (int64_t b = 0; b < nb; ++b, x += 256) {
    BlockQ4_K& o = y[b];
    quantize_scale_min_k(x, 15, -1.f, 20, o.d, o.dmin, o.scales, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) o.qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  uint8_t L[256];
  for (int64_t b = 0; b < nb; ++b, x += 256) {
    BlockQ5_K& o = y[b];
    quantize_scale_min_k(x, 31, -0.5f, 15, o.d, o.dmin, o.scales, L);
    std::memset(o.qh, 0, sizeof o.qh);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        const int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        o.qs[32 * c + l] = uint8_t((lo & 0xF) | ((hi & 0xF) << 4));
        o.qh[l] = uint8_t(o.qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
  }
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
      for (int i = 0; i < 16; ++i) L[16 * j + i] = int8_t(clamp_int(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
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

}  // namespace

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
  check(is_quant_dtype(t), "quantize_row: {} is not a quantized type", dtype_name(t));
  const int64_t nb = n / dtype_info(t).block_size;
  check(n >= 0 && nb * dtype_info(t).block_size == n, "quantize_row: n = {} is not a multiple of the {} block size {}",
        n, dtype_name(t), dtype_info(t).block_size);
  switch (t) {
    case DType::Q8_0: return quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), nb);
    case DType::Q4_0: return quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), nb);
    case DType::Q4_1: return quantize_affine(src, static_cast<BlockQ4_1*>(dst), nb, 4);
    case DType::Q5_0: return quantize_q5_0(src, static_cast<BlockQ5_0*>(dst), nb);
    case DType::Q5_1: return quantize_affine(src, static_cast<BlockQ5_1*>(dst), nb, 5);
    case DType::Q2_K: return quantize_q2_k(src, static_cast<BlockQ2_K*>(dst), nb);
    case DType::Q3_K: return quantize_q3_k(src, static_cast<BlockQ3_K*>(dst), nb);
    case DType::Q4_K: return quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), nb);
    case DType::Q5_K: return quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), nb);
    case DType::Q6_K: return quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), nb);
    default: fail("quantize_row: no quantizer for {}", dtype_name(t));
  }
}

}  // namespace unmask
