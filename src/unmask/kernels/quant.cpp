// Quantized blocks: activation quantization, blocks as integers (unpack_block) and the portable integer dot
// products; the AVX-512 VNNI kernels (quant_avx512.cpp) take over where cpu_features() allows. ggml's reference
// quantization is in quant_quantize.cpp.
// The activations x are quantized to int8 (one scale per group, with the sums of every 16 codes) so a row dot is
// Σ_blocks scale_w · scale_x · (integer dot); the offsets (Q4_0's q - 8, Q6_K's q - 32, ...) and the mins come out
// of the code sums.
#include "unmask/kernels/quant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/cpu.h"
#include "unmask/kernels/quant_avx512.h"

namespace unmask {
namespace {

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

// Codes of the K-quants (value order), bits 0-1 of Q2_K/Q3_K and the nibbles of Q4_K/Q5_K.
inline int low2_k(const uint8_t* qs, int i) { return (qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3; }
inline int nibble_k(const uint8_t* qs, int i) { return (qs[32 * (i / 64) + i % 32] >> (4 * ((i / 32) % 2))) & 0xF; }
// Bit i / 32 of bits[i % 32]: the high bit of Q3_K (hmask) and Q5_K (qh) codes.
inline int high_bit_k(const uint8_t* bits, int i) { return (bits[i % 32] >> (i / 32)) & 1; }

// The 32 codes of a 32-value block: nibbles (value j low, j + 16 high), plus bit 4 from qh for 5-bit codes.
void unpack_32(const uint8_t* qs, const uint8_t* qh, uint8_t* q) {
  uint32_t h = 0;
  if (qh) std::memcpy(&h, qh, 4);
  for (int j = 0; j < 16; ++j) {
    q[j] = uint8_t((qs[j] & 0xF) | (((h >> j) & 1) << 4));
    q[j + 16] = uint8_t((qs[j] >> 4) | (((h >> (j + 16)) & 1) << 4));
  }
}

void unpack_32_types(DType t, const void* blk, IntBlock& o) {
  o.sub = 32, o.off = 0, o.sc[0] = 1, o.m[0] = 0, o.dmin = 0;
  switch (t) {
    case DType::Q8_0: {
      const auto& b = *static_cast<const BlockQ8_0*>(blk);
      for (int j = 0; j < 32; ++j) o.q[j] = uint8_t(b.qs[j] + 128);
      o.off = 128, o.d = f16_to_f32(b.d);
      return;
    }
    case DType::Q4_0: {
      const auto& b = *static_cast<const BlockQ4_0*>(blk);
      unpack_32(b.qs, nullptr, o.q), o.off = 8, o.d = f16_to_f32(b.d);
      return;
    }
    case DType::Q5_0: {
      const auto& b = *static_cast<const BlockQ5_0*>(blk);
      unpack_32(b.qs, b.qh, o.q), o.off = 16, o.d = f16_to_f32(b.d);
      return;
    }
    case DType::Q4_1: {  // x = d·q + m: one "min" of -m
      const auto& b = *static_cast<const BlockQ4_1*>(blk);
      unpack_32(b.qs, nullptr, o.q), o.m[0] = 1, o.d = f16_to_f32(b.d), o.dmin = -f16_to_f32(b.m);
      return;
    }
    default: {
      const auto& b = *static_cast<const BlockQ5_1*>(blk);
      unpack_32(b.qs, b.qh, o.q), o.m[0] = 1, o.d = f16_to_f32(b.d), o.dmin = -f16_to_f32(b.m);
    }
  }
}

// Q4_K and Q5_K (qh null for Q4_K).
void unpack_scale_min_k(uint16_t d, uint16_t dmin, const uint8_t* scales, const uint8_t* qs, const uint8_t* qh,
                        IntBlock& o) {
  o.sub = 32, o.off = 0, o.d = f16_to_f32(d), o.dmin = f16_to_f32(dmin);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    scale_min_k4(j, scales, sc, m);
    o.sc[j] = int8_t(sc), o.m[j] = int8_t(m);
  }
  for (int i = 0; i < 256; ++i) o.q[i] = uint8_t(nibble_k(qs, i) | (qh ? high_bit_k(qh, i) << 4 : 0));
}

void unpack_k_types(DType t, const void* blk, IntBlock& o) {
  switch (t) {
    case DType::Q2_K: {
      const auto& b = *static_cast<const BlockQ2_K*>(blk);
      o.sub = 16, o.off = 0, o.d = f16_to_f32(b.d), o.dmin = f16_to_f32(b.dmin);
      for (int j = 0; j < 16; ++j) o.sc[j] = int8_t(b.scales[j] & 0xF), o.m[j] = int8_t(b.scales[j] >> 4);
      for (int i = 0; i < 256; ++i) o.q[i] = uint8_t(low2_k(b.qs, i));
      return;
    }
    case DType::Q3_K: {
      const auto& b = *static_cast<const BlockQ3_K*>(blk);
      o.sub = 16, o.off = 4, o.d = f16_to_f32(b.d), o.dmin = 0;
      q3_k_scales(b.scales, o.sc);
      std::fill(o.m, o.m + 16, int8_t(0));
      for (int i = 0; i < 256; ++i) o.q[i] = uint8_t(low2_k(b.qs, i) | (high_bit_k(b.hmask, i) << 2));
      return;
    }
    case DType::Q4_K: {
      const auto& b = *static_cast<const BlockQ4_K*>(blk);
      return unpack_scale_min_k(b.d, b.dmin, b.scales, b.qs, nullptr, o);
    }
    case DType::Q5_K: {
      const auto& b = *static_cast<const BlockQ5_K*>(blk);
      return unpack_scale_min_k(b.d, b.dmin, b.scales, b.qs, b.qh, o);
    }
    default: {  // Q6_K: the layout of ref::dequantize_row
      const auto& b = *static_cast<const BlockQ6_K*>(blk);
      o.sub = 16, o.off = 32, o.d = f16_to_f32(b.d), o.dmin = 0;
      std::copy(b.scales, b.scales + 16, o.sc);
      std::fill(o.m, o.m + 16, int8_t(0));
      for (int i = 0; i < 256; ++i) {
        const int half = i / 128, quarter = (i % 128) / 32, l = i % 32;
        const uint8_t lo = b.ql[half * 64 + (quarter % 2) * 32 + l];
        o.q[i] = uint8_t((quarter < 2 ? (lo & 0xF) : (lo >> 4)) | (((b.qh[half * 32 + l] >> (2 * quarter)) & 3) << 4));
      }
    }
  }
}

// Σ_blocks dx · (d · Σ_j sc_j (Σ q·x - off·Σx) - dmin · Σ_j m_j Σx) over the unpacked blocks: per block the two
// sums are exact int32, then the scales in f32.
float dot_unpacked(DType t, const uint8_t* w, ActRow x, int64_t n) {
  const auto& info = dtype_info(t);
  IntBlock blk;
  float r = 0;
  for (int64_t b = 0; b < n / info.block_size; ++b) {
    unpack_block(t, w + b * info.block_bytes, blk);
    const int64_t at = b * info.block_size;
    int32_t sum = 0, mins = 0;
    for (int j = 0; j < info.block_size / blk.sub; ++j) {
      int32_t qx = 0, xs = 0;
      for (int i = j * blk.sub; i < (j + 1) * blk.sub; ++i) qx += blk.q[i] * x.q[at + i];
      for (int k = 0; k < blk.sub / 16; ++k) xs += x.s16[(at + j * blk.sub) / 16 + k];
      sum += blk.sc[j] * (qx - blk.off * xs);
      mins += blk.m[j] * xs;
    }
    r += x.d[at / 32] * (blk.d * float(sum) - blk.dmin * float(mins));
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
  check(is_quant_dtype(t), "{}: {} is not a quantized type", what, dtype_name(t));
  const int bs = dtype_info(t).block_size;
  check(n >= 0 && n % bs == 0, "{}: n = {} is not a multiple of the {} block size {}", what, n, dtype_name(t), bs);
}

}  // namespace

bool is_quant_dtype(DType t) {
  switch (t) {
    case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0:
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return true;
    default: return false;
  }
}

int act_group(DType t) {
  check_row("act_group", t, 0);
  return dtype_info(t).block_size == 32 ? 32 : 256;
}

void unpack_block(DType t, const void* block, IntBlock& out) {
  if (dtype_info(t).block_size == 32) return unpack_32_types(t, block, out);
  unpack_k_types(t, block, out);
}

namespace {

// nearest_int(a · b) with the product unrounded: one fma into nearest_int's float trick (what -march=native made of
// the plain expression; explicit, so the AVX-512 twin computes the same and no compiler flag changes the bits).
inline int nearest_product(float a, float b) {
  return int(std::bit_cast<uint32_t>(std::fma(a, b, 12582912.f)) & 0x007fffffu) - 0x00400000;
}

// One row of quantize_acts, the portable loop: x (n) in groups of `group` -> q (n), d (n/32), s16 (n/16).
void quantize_acts_row(const float* x, int64_t n, int group, int8_t* q, float* d, int16_t* s16) {
  for (int64_t g = 0; g < n; g += group) {
    float amax = 0;
    for (int j = 0; j < group; ++j) amax = std::max(amax, std::fabs(x[g + j]));
    const float dg = amax / 127.f, id = dg != 0 ? 1.f / dg : 0.f;
    for (int j = 0; j < group; ++j) q[g + j] = int8_t(nearest_product(x[g + j], id));
    for (int j = 0; j < group; j += 32) d[(g + j) / 32] = dg;
    for (int j = 0; j < group; j += 16) {
      int s = 0;
      for (int l = 0; l < 16; ++l) s += q[g + j + l];
      s16[(g + j) / 16] = int16_t(s);
    }
  }
}

}  // namespace

void quantize_acts(DType t, const float* x, int T, int64_t n, QuantizedActs& a) {
  const int group = act_group(t);
  check(T >= 0 && n >= 0 && n % group == 0, "quantize_acts: (T, n) = ({}, {}), n must be a multiple of {} for {}", T,
        n, group, dtype_name(t));
  a.T = T, a.n = int(n);
  a.q.resize(size_t(T) * size_t(n));
  a.d.resize(size_t(T) * size_t(n / 32));
  a.sum16.resize(size_t(T) * size_t(n / 16));
  const bool fast = cpu_features().avx512_int8();
  // Each row by one thread, whatever the count: the same bits.
#pragma omp parallel for schedule(static) if (int64_t(T) * n >= 8192)
  for (int r = 0; r < T; ++r) {
    const float* xr = x + int64_t(r) * n;
    int8_t* q = a.q.data() + size_t(r) * size_t(n);
    float* d = a.d.data() + size_t(r) * size_t(n / 32);
    int16_t* s16 = a.sum16.data() + size_t(r) * size_t(n / 16);
    if (fast) avx512::quantize_acts_row(xr, n, group, q, d, s16);
    else quantize_acts_row(xr, n, group, q, d, s16);
  }
}

float dot_acts(DType t, const void* w_row, const QuantizedActs& a, int row) {
  if (cpu_features().avx512_int8()) return avx512::dot_acts(t, w_row, a, row);
  const ActRow x{a.q.data() + size_t(row) * size_t(a.n), a.d.data() + size_t(row) * size_t(a.n / 32),
                 a.sum16.data() + size_t(row) * size_t(a.n / 16)};
  const auto* w = static_cast<const uint8_t*>(w_row);
  switch (t) {
    case DType::Q8_0: return dot_q8_0(reinterpret_cast<const BlockQ8_0*>(w), x, a.n / 32);
    case DType::Q4_0: return dot_q4_0(reinterpret_cast<const BlockQ4_0*>(w), x, a.n / 32);
    case DType::Q6_K: return dot_q6_k(reinterpret_cast<const BlockQ6_K*>(w), x, a.n / 256);
    default: return dot_unpacked(t, w, x, a.n);
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
