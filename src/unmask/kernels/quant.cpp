// Quantized blocks: ggml's reference quantization, activation quantization, and the portable integer dot
// products; the AVX-512 VNNI kernels (quant_avx512.cpp) take over where cpu_features() allows.
// The activations x are quantized to int8 (one scale per group, with the sums of every 16 codes) so a row dot is
// Σ_blocks scale_w · scale_x · (integer dot); the offsets of Q4_0 (q - 8) and Q6_K (q - 32) and the mins of Q4_K
// come out of the code sums.
#include "unmask/kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/cpu.h"
#include "unmask/kernels/quant_avx512.h"

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

// ---- portable integer dots: per block an exact int32 sum, then the scales in f32 ----

struct ActRow {
  const int8_t* q;     // n
  const float* d;      // n/32
  const int16_t* s16;  // n/16
};

float dot_q8_0(const BlockQ8_0* w, ActRow x, int64_t nb) {
  float r = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t t = 0;
    for (int j = 0; j < 32; ++j) t += w[b].qs[j] * x.q[32 * b + j];
    r += f16_to_f32(w[b].d) * x.d[b] * float(t);
  }
  return r;
}

float dot_q4_0(const BlockQ4_0* w, ActRow x, int64_t nb) {
  float r = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t t = 0;
    for (int j = 0; j < 16; ++j)
      t += ((w[b].qs[j] & 0xF) - 8) * x.q[32 * b + j] + ((w[b].qs[j] >> 4) - 8) * x.q[32 * b + j + 16];
    r += f16_to_f32(w[b].d) * x.d[b] * float(t);
  }
  return r;
}

float dot_q4_k(const BlockQ4_K* w, ActRow x, int64_t nb) {
  float r = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t t = 0, mins = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m, s = 0;
      scale_min_k4(j, w[b].scales, sc, m);
      const uint8_t* q = w[b].qs + 32 * (j / 2);
      for (int l = 0; l < 32; ++l) s += ((j % 2 == 0) ? (q[l] & 0xF) : (q[l] >> 4)) * x.q[256 * b + 32 * j + l];
      t += sc * s;
      mins += m * (x.s16[16 * b + 2 * j] + x.s16[16 * b + 2 * j + 1]);
    }
    r += x.d[8 * b] * (f16_to_f32(w[b].d) * float(t) - f16_to_f32(w[b].dmin) * float(mins));
  }
  return r;
}

float dot_q6_k(const BlockQ6_K* w, ActRow x, int64_t nb) {
  float r = 0;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t t = 0;
    for (int i = 0; i < 256; ++i) {  // the layout of ref::dequantize_row
      const int half = i / 128, rem = i % 128, quarter = rem / 32, l = rem % 32;
      const uint8_t lo = w[b].ql[half * 64 + (quarter % 2) * 32 + l];
      const int q = ((quarter < 2 ? (lo & 0xF) : (lo >> 4)) | (((w[b].qh[half * 32 + l] >> (2 * quarter)) & 3) << 4)) - 32;
      t += w[b].scales[i / 16] * q * x.q[256 * b + i];
    }
    r += x.d[8 * b] * f16_to_f32(w[b].d) * float(t);
  }
  return r;
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

int act_group(DType t) {
  check_row("act_group", t, 0);
  return t == DType::Q8_0 || t == DType::Q4_0 ? 32 : 256;
}

void quantize_acts(DType t, const float* x, int T, int64_t n, QuantizedActs& a) {
  const int group = act_group(t);
  check(T >= 0 && n >= 0 && n % group == 0, "quantize_acts: (T, n) = ({}, {}), n must be a multiple of {} for {}", T,
        n, group, dtype_name(t));
  a.T = T, a.n = int(n);
  a.q.resize(size_t(T) * size_t(n));
  a.d.resize(size_t(T) * size_t(n / 32));
  a.sum16.resize(size_t(T) * size_t(n / 16));
  for (int64_t g = 0; g < int64_t(T) * n; g += group) {  // rows are whole groups
    float amax = 0;
    for (int j = 0; j < group; ++j) amax = std::max(amax, std::fabs(x[g + j]));
    const float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
    for (int j = 0; j < group; ++j) a.q[size_t(g + j)] = int8_t(nearest_int(x[g + j] * id));
    for (int j = 0; j < group; j += 32) a.d[size_t((g + j) / 32)] = d;
    for (int j = 0; j < group; j += 16) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += a.q[size_t(g + j + l)];
      a.sum16[size_t((g + j) / 16)] = int16_t(s);
    }
  }
}

float dot_acts(DType t, const void* w_row, const QuantizedActs& a, int row) {
  if (cpu_features().avx512_int8()) return avx512::dot_acts(t, w_row, a, row);
  const ActRow x{a.q.data() + size_t(row) * size_t(a.n), a.d.data() + size_t(row) * size_t(a.n / 32),
                 a.sum16.data() + size_t(row) * size_t(a.n / 16)};
  switch (t) {
    case DType::Q8_0: return dot_q8_0(static_cast<const BlockQ8_0*>(w_row), x, a.n / 32);
    case DType::Q4_0: return dot_q4_0(static_cast<const BlockQ4_0*>(w_row), x, a.n / 32);
    case DType::Q4_K: return dot_q4_k(static_cast<const BlockQ4_K*>(w_row), x, a.n / 256);
    default: return dot_q6_k(static_cast<const BlockQ6_K*>(w_row), x, a.n / 256);
  }
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
  row_to_f32(t, src, dst, n);
}

// The portable path is the scalar twin itself (and to_f32 for plain types): both give the same bits as AVX-512.
void row_to_f32(DType t, const void* src, float* dst, int64_t n) {
  if (cpu_features().avx512_int8()) return avx512::row_to_f32(t, src, dst, n);
  if (is_quant_dtype(t)) return ref::dequantize_row(t, src, dst, n);
  to_f32(t, src, dst, n);
}

float vec_dot(DType t, int64_t n, const void* w_row, const float* x) {
  check_row("vec_dot", t, n);
  QuantizedActs a;
  quantize_acts(t, x, 1, n, a);
  return dot_acts(t, w_row, a, 0);
}

void matvec(DType t, const void* w, int OC, int IC, const float* x, float* y, QuantizedActs& scratch) {
  check_row("matvec", t, IC);
  check(OC >= 0, "matvec: OC = {} is negative", OC);
  quantize_acts(t, x, 1, IC, scratch);
  const size_t rb = row_bytes(t, IC);
  const uint8_t* base = static_cast<const uint8_t*>(w);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < OC; ++o) y[o] = dot_acts(t, base + size_t(o) * rb, scratch, 0);
}

}  // namespace unmask
