// The quantized GEMM of quant_gemm.h: the block decoders, the portable C++ path (the definition, output by output)
// and the dispatch to the AVX-512 VNNI kernel (quant_gemm_avx512.cpp).
#include "unmask/kernels/quant_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "unmask/base/error.h"
#include "unmask/kernels/cpu.h"
#include "unmask/kernels/quant_avx512.h"
#include "unmask/kernels/quant_gemm_avx512.h"

namespace unmask {
namespace {

void decode_q8_0(const void* blk, QuantBlock& o) {
  const auto& b = *static_cast<const BlockQ8_0*>(blk);
  for (int k = 0; k < 32; ++k) o.c[k] = uint8_t(b.qs[k] + 128);
  o.z[0] = o.z[1] = -128;
  o.d = f16_to_f32(b.d);
}

void decode_q4_0(const void* blk, QuantBlock& o) {
  const auto& b = *static_cast<const BlockQ4_0*>(blk);
  for (int k = 0; k < 16; ++k) o.c[k] = b.qs[k] & 0xF, o.c[k + 16] = b.qs[k] >> 4;
  o.z[0] = o.z[1] = -8;
  o.d = f16_to_f32(b.d);
}

void decode_q4_k(const void* blk, QuantBlock& o) {
  const auto& b = *static_cast<const BlockQ4_K*>(blk);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    scale_min_k4(j, b.scales, sc, m);
    o.sc[j] = sc, o.m[2 * j] = o.m[2 * j + 1] = int16_t(m);
    const uint8_t* q = b.qs + 32 * (j / 2);
    for (int l = 0; l < 32; ++l) o.c[32 * j + l] = j % 2 == 0 ? q[l] & 0xF : q[l] >> 4;
  }
  o.d = f16_to_f32(b.d), o.e = -f16_to_f32(b.dmin);
}

void decode_q6_k(const void* blk, QuantBlock& o) {
  const auto& b = *static_cast<const BlockQ6_K*>(blk);
  for (int i = 0; i < 256; ++i) {  // the layout of ref::dequantize_row
    const int half = i / 128, quarter = (i % 128) / 32, l = i % 32;
    const uint8_t lo = b.ql[half * 64 + (quarter % 2) * 32 + l];
    o.c[i] = uint8_t((quarter < 2 ? (lo & 0xF) : (lo >> 4)) | (((b.qh[half * 32 + l] >> (2 * quarter)) & 3) << 4));
  }
  for (int j = 0; j < 16; ++j) o.sc[j] = b.scales[j], o.z[j] = int16_t(-32 * b.scales[j]);
  o.d = f16_to_f32(b.d);
}

// Any other type through unpack_block (quant.h): codes as they are, sub-block scales sc_j, zero points
// z_g = -off·sc_j (-off where the block has one scale), mins m_j per 16 values, e = -dmin (Q4_1/Q5_1: m = 1, e = +m).
template <DType T>
void decode_unpacked(const void* blk, QuantBlock& o) {
  IntBlock b;
  unpack_block(T, blk, b);
  const int n = dtype_info(T).block_size;
  std::memcpy(o.c, b.q, size_t(n));
  for (int j = 0; j < n / b.sub; ++j) o.sc[j] = b.sc[j];
  for (int g = 0; g < n / 16; ++g) {
    const int j = 16 * g / b.sub;
    o.z[g] = int16_t(-b.off * (n == 32 ? 1 : b.sc[j]));
    o.m[g] = b.m[j];
  }
  o.d = b.d, o.e = -b.dmin;
}

constexpr QuantFormat kFormats[] = {
    {DType::Q8_0, 32, 1, true, false, decode_q8_0},
    {DType::Q4_0, 32, 1, true, false, decode_q4_0},
    {DType::Q4_1, 32, 1, false, true, decode_unpacked<DType::Q4_1>},
    {DType::Q5_0, 32, 1, true, false, decode_unpacked<DType::Q5_0>},
    {DType::Q5_1, 32, 1, false, true, decode_unpacked<DType::Q5_1>},
    {DType::Q2_K, 256, 16, false, true, decode_unpacked<DType::Q2_K>},
    {DType::Q3_K, 256, 16, true, false, decode_unpacked<DType::Q3_K>},
    {DType::Q4_K, 256, 8, false, true, decode_q4_k},
    {DType::Q5_K, 256, 8, false, true, decode_unpacked<DType::Q5_K>},
    {DType::Q6_K, 256, 16, true, false, decode_q6_k},
};

// The activations of row t of a.
struct ActsRow {
  const int8_t* q;
  const float* d;
  const int16_t* s16;
};
ActsRow acts_row(const QuantizedActs& a, int t) {
  return {a.q.data() + size_t(t) * size_t(a.n), a.d.data() + size_t(t) * size_t(a.n / 32),
          a.sum16.data() + size_t(t) * size_t(a.n / 16)};
}

// acc after block b of one output: the definition in quant_gemm.h. blk decoded, x the row's activations at the block.
float block_step(const QuantFormat& f, const QuantBlock& blk, const int8_t* xq, const int16_t* s16, float dx,
                 float acc) {
  const int sub = f.block / f.nsub;
  int32_t I = 0, J = 0;
  for (int j = 0; j < f.nsub; ++j) {
    int32_t s = 0;
    for (int k = j * sub; k < (j + 1) * sub; ++k) s += int32_t(blk.c[k]) * xq[k];
    I += f.nsub == 1 ? s : blk.sc[j] * s;
  }
  for (int g = 0; g < f.block / 16; ++g) {
    if (f.has_z) I += int32_t(blk.z[g]) * s16[g];
    if (f.has_m) J += int32_t(blk.m[g]) * s16[g];
  }
  acc = std::fma(float(I), dx * blk.d, acc);
  return f.has_m ? std::fma(float(J), dx * blk.e, acc) : acc;
}

// Portable: output channels [o0, o1) of out (T, ldo), each block decoded once and applied to every row of x.
void gemm_portable(const QuantFormat& f, const uint8_t* w, size_t rb, int o0, int o1, const QuantizedActs& a,
                   float* out, int64_t ldo, std::vector<float>& acc) {
  const int nb = a.n / f.block;
  acc.resize(size_t(a.T));
  QuantBlock blk;
  for (int o = o0; o < o1; ++o) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int b = 0; b < nb; ++b) {
      f.decode(w + size_t(o) * rb + size_t(b) * size_t(dtype_info(f.type).block_bytes), blk);
      const int k0 = b * f.block;
      for (int t = 0; t < a.T; ++t) {
        const ActsRow x = acts_row(a, t);
        acc[size_t(t)] = block_step(f, blk, x.q + k0, x.s16 + k0 / 16, x.d[k0 / 32], acc[size_t(t)]);
      }
    }
    for (int t = 0; t < a.T; ++t) out[int64_t(t) * ldo + o] = acc[size_t(t)];
  }
}

}  // namespace

const QuantFormat* quant_format(DType t) {
  for (const QuantFormat& f : kFormats)
    if (f.type == t) return &f;
  return nullptr;
}

void quant_gemm_rows(DType t, const void* w, int o0, int o1, const QuantizedActs& a, float* out, int64_t ldo,
                     QuantScratch& scratch) {
  const QuantFormat* f = quant_format(t);
  check(f != nullptr, "quant_gemm: {} has no integer GEMM", dtype_name(t));
  check(a.n % f->block == 0, "quant_gemm: rows of {} values are not whole {} blocks", a.n, dtype_name(t));
  check(o0 % kQuantGemmRows == 0 && o1 > o0 && o1 - o0 <= kQuantGemmRows, "quant_gemm: rows [{}, {}) are not a group",
        o0, o1);
  const size_t rb = row_bytes(t, a.n);
  const auto* base = static_cast<const uint8_t*>(w);
  const bool fast = cpu_features().avx512_int8();
  if (!fast) {
    gemm_portable(*f, base, rb, o0, o1, a, out, ldo, scratch.acc);
  } else if (a.T > kQuantRowsDirect || f->block == 32) {  // (32-value types here only when not repacked)
    avx512::quant_gemm_group(*f, base + size_t(o0) * rb, rb, o1 - o0, a, out + o0, ldo, scratch.panel);
  } else {
    for (int r = 0; r < a.T; ++r)
      avx512::quant_rows(t, base + size_t(o0) * rb, rb, o1 - o0, a, r, out + r * ldo + o0, scratch.panel);
  }
}

bool quant_repacks(DType t) { return avx512::packed_block_bytes(t) > 0; }

float quant_dot(DType t, const void* w_row, const QuantizedActs& a, int row) {
  const QuantFormat* f = quant_format(t);
  check(f != nullptr, "quant_dot: {} has no integer GEMM", dtype_name(t));
  const auto* w = static_cast<const uint8_t*>(w_row);
  const ActsRow x = acts_row(a, row);
  QuantBlock blk;
  float acc = 0;
  for (int b = 0; b < a.n / f->block; ++b) {
    f->decode(w + size_t(b) * size_t(dtype_info(t).block_bytes), blk);
    const int k0 = b * f->block;
    acc = block_step(*f, blk, x.q + k0, x.s16 + k0 / 16, x.d[k0 / 32], acc);
  }
  return acc;
}

}  // namespace unmask
