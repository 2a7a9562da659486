// Quantized blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): layouts, reference quantization
// against llama.cpp's own bounds and bytes, fast kernels against the scalar twins.
//
// llama.cpp's tests/test-quantize-fns.cpp, reproduced: data x_i = 0.1 + 2·cos(i + offset), 4096 values;
//   total error  = sqrt(Σ (dequantize(quantize(x)) - x)²) / n   <= 0.002 (MAX_QUANTIZATION_TOTAL_ERROR; Q2_K 0.0075,
//                                                                  Q3_K 0.004: its _2BITS and _3BITS bounds)
//   dot error    = |vec_dot(quantize(x), y) - Σ x·y| / n         <= 0.02  (MAX_DOT_PRODUCT_ERROR; Q2_K 0.04, _LOWBIT)
// (their "rmse" divides sqrt of the sum by n, not by sqrt(n); we also check the true per-value RMS below.)
//
// fast vec_dot vs ref::vec_dot: the fast dot quantizes x to int8 with step d_x = max|x| / 127 over its group (32
// values for the 32-value blocks, 256 for the K-quants), so each x_i moves by at most d_x/2 (plus f32 rounding of
// x·(1/d_x)), and the integer sums are exact; the float part adds at most a few eps per block:
//   |fast - ref| <= Σ_i |w_i| · 0.5·d_x(i) · (1 + 1e-5)  +  8·eps·Σ_i |w_i x_i|  (+ tiny absolute slack).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include <omp.h>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/cpu.h"
#include "unmask/kernels/quant.h"

namespace unmask {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();
const DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                        DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

// Offset of the f16 super-scale d in a block of t.
size_t d_offset(DType t) {
  switch (t) {
    case DType::Q2_K: return offsetof(BlockQ2_K, d);
    case DType::Q3_K: return offsetof(BlockQ3_K, d);
    case DType::Q6_K: return offsetof(BlockQ6_K, d);
    default: return 0;
  }
}

std::vector<uint8_t> quantize(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(row_bytes(t, int64_t(x.size())));
  quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  return q;
}

std::vector<float> uniform(Rng& rng, int64_t n, float lo, float hi) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& f : v) f = lo + (hi - lo) * rng.uniform_f();
  return v;
}

// Every kernel path this machine runs: the portable C++ one and, where the CPU has it, AVX-512 VNNI.
std::vector<std::pair<const char*, CpuFeatures>> paths() {
  std::vector<std::pair<const char*, CpuFeatures>> p{{"generic", CpuFeatures{}}};
  if (detect_cpu_features().avx512_int8()) p.emplace_back("avx512", detect_cpu_features());
  return p;
}

// The fast-vs-ref bound of the header comment.
double act_bound(DType t, const std::vector<float>& w, const std::vector<float>& x) {
  const int group = dtype_info(t).block_size;
  double b = 0, sum_abs = 0;
  for (size_t g = 0; g < x.size(); g += size_t(group)) {
    double amax = 0;
    for (int j = 0; j < group; ++j) amax = std::max(amax, double(std::fabs(x[g + j])));
    for (int j = 0; j < group; ++j) {
      b += std::fabs(w[g + j]) * 0.5 * amax / 127 * (1 + 1e-5);
      sum_abs += std::fabs(double(w[g + j]) * x[g + j]);
    }
  }
  return b + 8 * kEps * sum_abs + 1e-6;
}

TEST(Quant, BlockSizesMatchDtypeInfo) {
  EXPECT_EQ(dtype_info(DType::Q8_0).block_bytes, int(sizeof(BlockQ8_0)));
  EXPECT_EQ(dtype_info(DType::Q4_0).block_bytes, int(sizeof(BlockQ4_0)));
  EXPECT_EQ(dtype_info(DType::Q4_1).block_bytes, int(sizeof(BlockQ4_1)));
  EXPECT_EQ(dtype_info(DType::Q5_0).block_bytes, int(sizeof(BlockQ5_0)));
  EXPECT_EQ(dtype_info(DType::Q5_1).block_bytes, int(sizeof(BlockQ5_1)));
  EXPECT_EQ(dtype_info(DType::Q2_K).block_bytes, int(sizeof(BlockQ2_K)));
  EXPECT_EQ(dtype_info(DType::Q3_K).block_bytes, int(sizeof(BlockQ3_K)));
  EXPECT_EQ(dtype_info(DType::Q4_K).block_bytes, int(sizeof(BlockQ4_K)));
  EXPECT_EQ(dtype_info(DType::Q5_K).block_bytes, int(sizeof(BlockQ5_K)));
  EXPECT_EQ(dtype_info(DType::Q6_K).block_bytes, int(sizeof(BlockQ6_K)));
  // ggml's numbering (ggml.h enum ggml_type) and names.
  EXPECT_EQ(int(DType::Q4_1), 3);
  EXPECT_EQ(int(DType::Q5_0), 6);
  EXPECT_EQ(int(DType::Q5_1), 7);
  EXPECT_EQ(int(DType::Q2_K), 10);
  EXPECT_EQ(int(DType::Q3_K), 11);
  EXPECT_EQ(int(DType::Q5_K), 13);
  EXPECT_EQ(parse_dtype("Q5_K"), DType::Q5_K);
  EXPECT_EQ(dtype_name(DType::Q3_K), "q3_k");
  for (DType t : kTypes) EXPECT_TRUE(is_quant_dtype(t));
  EXPECT_FALSE(is_quant_dtype(DType::BF16));
  std::vector<float> x(100), y(100);
  EXPECT_THROW(dequantize_row(DType::Q4_K, nullptr, y.data(), 100), Error);
  EXPECT_THROW(quantize_row(DType::F32, x.data(), y.data(), 32), Error);
}

TEST(Quant, LlamaCppQuantizeFnsBounds) {
  const int n = 32 * 128;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) x[size_t(i)] = 0.1f + 2 * std::cos(float(i) + 0.f);
  for (int i = 0; i < n; ++i) y[size_t(i)] = 0.1f + 2 * std::cos(float(i) + 1.f);
  double dot_ref = 0;
  for (int i = 0; i < n; ++i) dot_ref += double(x[size_t(i)]) * y[size_t(i)];
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    for (DType t : kTypes) {
      auto q = quantize(t, x);
      std::vector<float> back(n);
      ref::dequantize_row(t, q.data(), back.data(), n);
      double ss = 0;
      for (int i = 0; i < n; ++i) ss += std::pow(double(back[size_t(i)]) - x[size_t(i)], 2);
      const double total_error = std::sqrt(ss) / n;
      const double max_total = t == DType::Q2_K ? 0.0075 : t == DType::Q3_K ? 0.004 : 0.002;
      EXPECT_LT(total_error, max_total) << dtype_name(t);
      const double dot_error = std::fabs(vec_dot(t, n, q.data(), y.data()) - dot_ref) / n;
      EXPECT_LT(dot_error, t == DType::Q2_K ? 0.04 : 0.02) << dtype_name(t);
    }
  }
}

// True RMS of the round trip on U[-1, 1]. One rounding to a grid of step s has RMS s/sqrt(12); the bounds allow
// 1.3x that for the rounded (f16 / 4- or 6-bit) scales and clamping. Steps: symmetric types max/levels-below-zero
// (Q8_0 1/127, Q4_0 1/8, Q5_0 1/16, Q3_K 1/4, Q6_K 1/32); types with a min (range ≈ 2) / (levels - 1): Q4_1 and Q4_K
// 2/15, Q5_1 and Q5_K 2/31, Q2_K 2/3 (a range of 16 values is a little under 2: the fits of the K-quants land
// below one step/sqrt(12)).
double grid_step(DType t) {
  switch (t) {
    case DType::Q8_0: return 1.0 / 127;
    case DType::Q4_0: return 1.0 / 8;
    case DType::Q5_0: return 1.0 / 16;
    case DType::Q3_K: return 1.0 / 4;
    case DType::Q6_K: return 1.0 / 32;
    case DType::Q4_1: case DType::Q4_K: return 2.0 / 15;
    case DType::Q5_1: case DType::Q5_K: return 2.0 / 31;
    default: return 2.0 / 3;  // Q2_K
  }
}

double round_trip_rms(DType t, const std::vector<float>& x) {
  auto q = quantize(t, x);
  std::vector<float> back(x.size());
  dequantize_row(t, q.data(), back.data(), int64_t(x.size()));
  double ss = 0;
  for (size_t i = 0; i < x.size(); ++i) ss += std::pow(double(back[i]) - x[i], 2);
  return std::sqrt(ss / double(x.size()));
}

TEST(Quant, RoundTripRmsOnUniform) {
  Rng rng(7);
  const auto x = uniform(rng, 4096, -1, 1);
  for (DType t : kTypes) {
    const double rms = round_trip_rms(t, x), one_rounding = grid_step(t) / std::sqrt(12.0);
    EXPECT_LE(rms, 1.3 * one_rounding) << dtype_name(t);
    EXPECT_GT(rms, 0.2 * one_rounding) << dtype_name(t);  // really quantized
  }
}

TEST(Quant, FastMatchesRefOnOddRowLengths) {
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    Rng rng(11);
    for (DType t : kTypes)  // 32-value blocks: also an odd count of blocks (the AVX-512 kernels take two at a time)
      for (int n : {256, 768, 4096 + 256, dtype_info(t).block_size == 32 ? 32 * 9 : 256}) {
        auto wf = uniform(rng, n, -1, 1);
        const auto x = uniform(rng, n, -2, 1.5f);
        auto q = quantize(t, wf);
        std::vector<float> fast(static_cast<size_t>(n)), twin(static_cast<size_t>(n));
        dequantize_row(t, q.data(), fast.data(), n);
        ref::dequantize_row(t, q.data(), twin.data(), n);
        ASSERT_EQ(0, std::memcmp(fast.data(), twin.data(), fast.size() * 4)) << dtype_name(t) << " n " << n;
        const double exact = ref::vec_dot(t, n, q.data(), x.data());
        const double got = vec_dot(t, n, q.data(), x.data());
        EXPECT_LE(std::fabs(got - exact), act_bound(t, twin, x)) << dtype_name(t) << " n " << n;
      }
  }
}

TEST(Quant, MatvecIsRowDotsAndThreadIndependent) {
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    Rng rng(3);
    for (DType t : kTypes) {
      const int OC = 37, IC = 512;
      const auto wf = uniform(rng, int64_t(OC) * IC, -1, 1);
      const auto x = uniform(rng, IC, -1, 1);
      auto q = quantize(t, wf);
      const size_t rb = row_bytes(t, IC);
      std::vector<float> y1(OC), y2(OC);
    QuantizedActs scratch;
      const int saved = omp_get_max_threads();
      omp_set_num_threads(1);
      matvec(t, q.data(), OC, IC, x.data(), y1.data(), scratch);
      omp_set_num_threads(2);
      matvec(t, q.data(), OC, IC, x.data(), y2.data(), scratch);
      omp_set_num_threads(saved);
      for (int o = 0; o < OC; ++o) {
        EXPECT_EQ(y1[size_t(o)], y2[size_t(o)]);
        EXPECT_EQ(y1[size_t(o)], vec_dot(t, IC, q.data() + size_t(o) * rb, x.data())) << "row " << o;
      }
    }
  }
}

// Hand-built blocks whose values follow from the formulas in quant.h. f16 0x3C00 = 1, 0x4000 = 2, 0x3800 = 0.5.
TEST(Quant, HandBuiltBlocks) {
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    {
      BlockQ8_0 b{};
      b.d = 0x3800;
      for (int j = 0; j < 32; ++j) b.qs[j] = int8_t(j - 16);
      std::vector<float> y(32);
      dequantize_row(DType::Q8_0, &b, y.data(), 32);
      for (int j = 0; j < 32; ++j) EXPECT_EQ(y[size_t(j)], 0.5f * float(j - 16));
    }
    {
      BlockQ4_0 b{};
      b.d = 0x4000;
      for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
      std::vector<float> y(32);
      dequantize_row(DType::Q4_0, &b, y.data(), 32);
      for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[size_t(j)], 2.f * float(j - 8));
        EXPECT_EQ(y[size_t(j + 16)], 2.f * float(7 - j));
      }
    }
    {
      // Sub-block j: scale j+1, min 2j (sub-blocks 4-7 need the split 6-bit packing: scale 33+j, min 40+j).
      BlockQ4_K b{};
      b.d = 0x3C00;
      b.dmin = 0x3800;
      int sc[8], mn[8];
      for (int j = 0; j < 4; ++j) sc[j] = j + 1, mn[j] = 2 * j;
      for (int j = 4; j < 8; ++j) sc[j] = 33 + j, mn[j] = 40 + j;
      for (int j = 0; j < 4; ++j) {
        b.scales[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
        b.scales[j + 4] = uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
        b.scales[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
      }
      for (int i = 0; i < 128; ++i) b.qs[i] = uint8_t((i % 16) | ((15 - i % 16) << 4));
      std::vector<float> y(256), yr(256);
      dequantize_row(DType::Q4_K, &b, y.data(), 256);
      ref::dequantize_row(DType::Q4_K, &b, yr.data(), 256);
      for (int i = 0; i < 256; ++i) {
        const int j = i / 32, l = i % 32;
        const int q = (j % 2 == 0) ? l % 16 : 15 - l % 16;
        const float want = float(sc[j]) * float(q) - 0.5f * float(mn[j]);
        EXPECT_EQ(y[size_t(i)], want) << i;
        EXPECT_EQ(yr[size_t(i)], want) << i;
      }
    }
    {
      // Value i = 128h + 32k + l gets q = (i % 64) - 32 (6-bit code i % 64), scale j = i/16 -> j - 8.
      BlockQ6_K b{};
      b.d = 0x4000;
      for (int j = 0; j < 16; ++j) b.scales[j] = int8_t(j - 8);
      for (int i = 0; i < 256; ++i) {
        const int h = i / 128, k = (i % 128) / 32, l = i % 32, code = i % 64;
        b.ql[64 * h + 32 * (k % 2) + l] |= uint8_t((code & 0xF) << (k < 2 ? 0 : 4));
        b.qh[32 * h + l] |= uint8_t((code >> 4) << (2 * k));
      }
      std::vector<float> y(256);
      dequantize_row(DType::Q6_K, &b, y.data(), 256);
      for (int i = 0; i < 256; ++i) EXPECT_EQ(y[size_t(i)], 2.f * float(i / 16 - 8) * float(i % 64 - 32)) << i;
    }
  }
}

// The new types, hand-built from the layouts in quant.h: each value's expected float follows from the formula, the
// codes and scales chosen to touch every bit (5th bits, 6-bit scales split over bytes, negative Q3_K scales).
void expect_values(DType t, const void* blk, int n, const std::function<float(int)>& want) {
  std::vector<float> y(static_cast<size_t>(n)), yr(static_cast<size_t>(n));
  dequantize_row(t, blk, y.data(), n);
  ref::dequantize_row(t, blk, yr.data(), n);
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(y[size_t(i)], want(i)) << dtype_name(t) << " value " << i;
    ASSERT_EQ(yr[size_t(i)], want(i)) << dtype_name(t) << " value " << i;
  }
}

TEST(Quant, HandBuiltBlocksOfTheNewTypes) {
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    // 32-value blocks: value j has code (7j + 3) mod 2^bits; d = 2, m = -0.5.
    auto code32 = [](int j, int bits) { return (7 * j + 3) % (1 << bits); };
    BlockQ4_1 b41{};
    BlockQ5_0 b50{};
    BlockQ5_1 b51{};
    b41.d = b50.d = b51.d = 0x4000;
    b41.m = b51.m = 0xB800;
    uint32_t qh = 0;
    for (int j = 0; j < 32; ++j) {
      const int c4 = code32(j, 4), c5 = code32(j, 5);
      b41.qs[j % 16] = uint8_t(b41.qs[j % 16] | (c4 << (j < 16 ? 0 : 4)));
      b50.qs[j % 16] = uint8_t(b50.qs[j % 16] | ((c5 & 0xF) << (j < 16 ? 0 : 4)));
      qh |= uint32_t(c5 >> 4) << j;
    }
    std::memcpy(b50.qh, &qh, 4);
    std::memcpy(b51.qs, b50.qs, 16), std::memcpy(b51.qh, b50.qh, 4);
    expect_values(DType::Q4_1, &b41, 32, [&](int j) { return 2.f * float(code32(j, 4)) - 0.5f; });
    expect_values(DType::Q5_0, &b50, 32, [&](int j) { return 2.f * float(code32(j, 5) - 16); });
    expect_values(DType::Q5_1, &b51, 32, [&](int j) { return 2.f * float(code32(j, 5)) - 0.5f; });

    // K blocks: value i has code (5i + 1) mod 2^bits. Q2_K: scale j+? and min 15-j of 16-value sub-block j.
    auto codek = [](int i, int bits) { return (5 * i + 1) % (1 << bits); };
    BlockQ2_K b2{};
    b2.d = 0x3C00, b2.dmin = 0x3800;  // 1, 0.5
    for (int j = 0; j < 16; ++j) b2.scales[j] = uint8_t(((j + 1) % 16) | ((15 - j) << 4));
    BlockQ3_K b3{};
    b3.d = 0x4000;
    int sc3[16];
    for (int j = 0; j < 16; ++j) sc3[j] = 4 * j - 30;  // -30 .. 30: every 6-bit code
    for (int j = 0; j < 16; ++j) {
      const int l = sc3[j] + 32;
      b3.scales[j % 8] = uint8_t(b3.scales[j % 8] | ((l & 0xF) << (j < 8 ? 0 : 4)));
      b3.scales[8 + j % 4] = uint8_t(b3.scales[8 + j % 4] | ((l >> 4) << (2 * (j / 4))));
    }
    for (int i = 0; i < 256; ++i) {  // value 128h + 32s + l: bits 2s of qs[32h + l], Q3_K's bit 2 in hmask[l] bit 4h+s
      const int h = i / 128, sh = (i % 128) / 32, l = i % 32;
      b2.qs[32 * h + l] = uint8_t(b2.qs[32 * h + l] | (codek(i, 2) << (2 * sh)));
      b3.qs[32 * h + l] = uint8_t(b3.qs[32 * h + l] | ((codek(i, 3) & 3) << (2 * sh)));
      b3.hmask[l] = uint8_t(b3.hmask[l] | ((codek(i, 3) >> 2) << (4 * h + sh)));
    }
    expect_values(DType::Q2_K, &b2, 256, [&](int i) {
      const int j = i / 16;
      return float((j + 1) % 16) * float(codek(i, 2)) - 0.5f * float(15 - j);
    });
    expect_values(DType::Q3_K, &b3, 256, [&](int i) { return 2.f * float(sc3[i / 16]) * float(codek(i, 3) - 4); });

    // Q5_K: sub-block j of 32 has scale 40 + 3j and min 63 - 5j (6 bits, split for j >= 4 as Q4_K).
    BlockQ5_K b5{};
    b5.d = 0x3800, b5.dmin = 0x3400;  // 0.5, 0.25
    int sc[8], mn[8];
    for (int j = 0; j < 8; ++j) sc[j] = 40 + 3 * j, mn[j] = 63 - 5 * j;
    for (int j = 0; j < 4; ++j) {
      b5.scales[j] = uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
      b5.scales[j + 4] = uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
      b5.scales[j + 8] = uint8_t((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
    }
    for (int i = 0; i < 256; ++i) {  // value 64c + 32p + l: nibble p of qs[32c + l], bit 4 in bit 2c + p of qh[l]
      const int c = i / 64, p = (i / 32) % 2, l = i % 32;
      b5.qs[32 * c + l] = uint8_t(b5.qs[32 * c + l] | ((codek(i, 5) & 0xF) << (4 * p)));
      b5.qh[l] = uint8_t(b5.qh[l] | ((codek(i, 5) >> 4) << (2 * c + p)));
    }
    expect_values(DType::Q5_K, &b5, 256, [&](int i) {
      const int j = i / 32;
      return 0.5f * float(sc[j]) * float(codek(i, 5)) - 0.25f * float(mn[j]);
    });
  }
}

// unpack_block (the integer form the portable dots use) gives back ref's values: d·sc·(q - off) - dmin·m in f32.
TEST(Quant, UnpackBlockIsTheRefValues) {
  Rng rng(23);
  for (DType t : kTypes) {
    const int n = 512;
    const auto x = uniform(rng, n, -1.5f, 0.7f);
    auto q = quantize(t, x);
    std::vector<float> want(n);
    ref::dequantize_row(t, q.data(), want.data(), n);
    const int bs = dtype_info(t).block_size;
    IntBlock blk;
    for (int b = 0; b < n / bs; ++b) {
      unpack_block(t, q.data() + size_t(b) * size_t(dtype_info(t).block_bytes), blk);
      for (int i = 0; i < bs; ++i) {
        const int j = i / blk.sub;
        const float v = (blk.d * float(blk.sc[j])) * float(blk.q[i] - blk.off) - blk.dmin * float(blk.m[j]);
        ASSERT_EQ(v, want[size_t(b * bs + i)]) << dtype_name(t) << " block " << b << " value " << i;
      }
    }
  }
}

// The bytes of ggml's quantize_row_*_ref (FNV-1a 64 of what ggml_quantize_chunk wrote, without an importance matrix,
// from llama.cpp's ggml-base built as llama.cpp builds it) for two inputs: llama.cpp's test data and a heavy-tailed
// row with outliers.
uint64_t fnv1a(const std::vector<uint8_t>& b) {
  uint64_t h = 14695981039346656037ull;
  for (uint8_t c : b) h = (h ^ c) * 1099511628211ull;
  return h;
}

TEST(Quant, BytesEqualGgmlReferenceQuantization) {
  const int n = 4096;
  std::vector<float> cosx(n), tail(n);
  for (int i = 0; i < n; ++i) cosx[size_t(i)] = 0.1f + 2 * std::cos(float(i));
  Rng rng(2024);
  for (int i = 0; i < n; ++i) {
    const float u = 2 * rng.uniform_f() - 1;
    tail[size_t(i)] = u * u * u * (i % 61 == 0 ? 8.f : 1.f);
  }
  const struct {
    DType t;
    uint64_t cos_hash, tail_hash;
  } golden[] = {
      {DType::Q4_0, 0xabd6482db510b9f1ull, 0xdcc31015efee482cull},
      {DType::Q4_1, 0x6ff4f17e43d43fb5ull, 0xed683700837ca295ull},
      {DType::Q5_0, 0xf03036db1f15265cull, 0x77eb0b89b8d38aa6ull},
      {DType::Q5_1, 0x7600853b75c75c79ull, 0xfeb4fe964b41b5dfull},
      {DType::Q8_0, 0x627a3cdb51589f4dull, 0x6ec06e3de49978b9ull},
      {DType::Q2_K, 0xc8566d1777de83e5ull, 0x88fd4a52cc3ea72cull},
      {DType::Q3_K, 0xef7b4c9afb845323ull, 0x21659f12a9f3b6afull},
      {DType::Q4_K, 0x9604f769a2e93d31ull, 0x74f60700f50f08fbull},
      {DType::Q5_K, 0xc0e4eb2072bd4a01ull, 0x57f1bb14c9de26c1ull},
      {DType::Q6_K, 0x32c1e4fa1a55c9dbull, 0x3e7a38160f92f20cull},
  };
  for (const auto& g : golden) {
    EXPECT_EQ(fnv1a(quantize(g.t, cosx)), g.cos_hash) << dtype_name(g.t);
    EXPECT_EQ(fnv1a(quantize(g.t, tail)), g.tail_hash) << dtype_name(g.t);
  }
}

// Zeros, constant rows and one outlier: zeros come back as zeros, a constant within its f16 / scale rounding, and a
// block is quantized on its own (an outlier changes its block only).
TEST(Quant, TrickyRows) {
  for (DType t : kTypes) {
    const int bs = dtype_info(t).block_size, n = 4 * bs;
    std::vector<float> back(static_cast<size_t>(n));
    const std::vector<float> zeros(static_cast<size_t>(n), 0.f);
    dequantize_row(t, quantize(t, zeros).data(), back.data(), n);
    for (float v : back) ASSERT_EQ(v, 0.f) << dtype_name(t);
    for (float c : {0.37f, -2.5f, 0.05f}) {
      const std::vector<float> flat(static_cast<size_t>(n), c);
      dequantize_row(t, quantize(t, flat).data(), back.data(), n);
      // f16 keeps 11 bits; K-quant scales are 6-bit (4-bit for Q2_K) multiples of the super-scale: 1/16 of c at most.
      // (Much smaller constants lose more: Q6_K's super-scale c/4096 becomes an f16 subnormal below c ≈ 0.25.)
      const double tol = std::fabs(c) * (bs == 32 ? 1e-3 : t == DType::Q2_K ? 0.07 : 0.02);
      for (float v : back) ASSERT_NEAR(v, c, tol) << dtype_name(t) << " constant " << c;
    }
    Rng rng(31);
    auto x = uniform(rng, n, -0.1f, 0.1f);
    const auto before = quantize(t, x);
    x[size_t(bs + 5)] = 40.f;  // an outlier in block 1
    const auto after = quantize(t, x);
    const size_t bb = size_t(dtype_info(t).block_bytes);
    for (int b = 0; b < 4; ++b)
      EXPECT_EQ(std::memcmp(before.data() + b * bb, after.data() + b * bb, bb) == 0, b != 1) << dtype_name(t) << b;
    dequantize_row(t, after.data(), back.data(), n);
    EXPECT_NEAR(back[size_t(bs + 5)], 40.f, 40.f * (t == DType::Q2_K ? 0.07 : 0.02)) << dtype_name(t);
  }
}

// Negative control: the high bits (Q5_0/Q5_1's qh, Q3_K's hmask, Q5_K's qh) matter. Cleared, the round trip of the
// llama.cpp data breaks the bound LlamaCppQuantizeFnsBounds checks.
TEST(Quant, DroppedHighBitsAreCaught) {
  const int n = 4096;
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[size_t(i)] = 0.1f + 2 * std::cos(float(i));
  const struct {
    DType t;
    size_t at, len;
  } high[] = {{DType::Q5_0, offsetof(BlockQ5_0, qh), 4}, {DType::Q5_1, offsetof(BlockQ5_1, qh), 4},
              {DType::Q3_K, offsetof(BlockQ3_K, hmask), 32}, {DType::Q5_K, offsetof(BlockQ5_K, qh), 32}};
  for (const auto& h : high) {
    auto q = quantize(h.t, x);
    const size_t bb = size_t(dtype_info(h.t).block_bytes);
    for (size_t b = 0; b < q.size() / bb; ++b) std::memset(q.data() + b * bb + h.at, 0, h.len);
    std::vector<float> back(n);
    dequantize_row(h.t, q.data(), back.data(), n);
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += std::pow(double(back[size_t(i)]) - x[size_t(i)], 2);
    EXPECT_GT(std::sqrt(ss) / n, h.t == DType::Q3_K ? 0.004 : 0.002) << dtype_name(h.t);
  }
}

// Negative control: block scales 1.25-1.5x too large must break the fast/ref bound used above.
TEST(Quant, WrongScaleIsCaught) {
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    Rng rng(5);
    for (DType t : kTypes) {
      const int n = 768;
      const auto wf = uniform(rng, n, -1, 1);
      const auto x = uniform(rng, n, 0.5f, 1);  // one sign so the error cannot cancel
      auto q = quantize(t, wf);
      std::vector<float> twin(static_cast<size_t>(n));
      ref::dequantize_row(t, q.data(), twin.data(), n);
      const double exact = ref::vec_dot(t, n, q.data(), x.data());
      auto bad = q;
      const size_t bb = size_t(dtype_info(t).block_bytes), d_off = d_offset(t);  // f16 d
      for (size_t b = 0; b < bad.size() / bb; ++b) {
        uint16_t d;
        std::memcpy(&d, bad.data() + b * bb + d_off, 2);
        d = uint16_t(d + 0x0200);  // every block's scale about 1.25x-1.5x
        std::memcpy(bad.data() + b * bb + d_off, &d, 2);
      }
      EXPECT_GT(std::fabs(vec_dot(t, n, bad.data(), x.data()) - exact), act_bound(t, twin, x)) << dtype_name(t);
    }
  }
}

TEST(Quant, GenericEnvironmentTurnsTheFastPathOff) {
  setenv("UNMASK_CPU", "generic", 1);
  const CpuFeatures f = detect_cpu_features();
  unsetenv("UNMASK_CPU");
  EXPECT_FALSE(f.avx512f || f.avx512vnni || f.avx512_int8());
}

// The two paths give the same dequantized bits and dots within the bound of the integer arithmetic: both sum exact
// int32 block dots, so they differ only by f32 rounding of the per-block terms (a few eps per block).
TEST(Quant, FastPathAgreesWithPortablePath) {
  if (!detect_cpu_features().avx512_int8()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU: only the portable path runs";
  Rng rng(17);
  for (DType t : kTypes) {
    const int n = dtype_info(t).block_size == 32 ? 32 * 41 : 1024 + 256;  // an odd count of 32-value blocks
    const auto wf = uniform(rng, n, -1, 1), x = uniform(rng, n, -1, 1);
    auto q = quantize(t, wf);
    std::vector<float> fast(n), portable(n);
    dequantize_row(t, q.data(), fast.data(), n);
    float dot_fast = vec_dot(t, n, q.data(), x.data()), dot_portable;
    {
      ScopedCpuFeatures generic{CpuFeatures{}};
      dequantize_row(t, q.data(), portable.data(), n);
      dot_portable = vec_dot(t, n, q.data(), x.data());
    }
    EXPECT_EQ(0, std::memcmp(fast.data(), portable.data(), fast.size() * 4)) << dtype_name(t);
    double sum_abs = 0;
    for (int i = 0; i < n; ++i) sum_abs += std::fabs(double(fast[size_t(i)]) * x[size_t(i)]);
    EXPECT_LE(std::fabs(dot_fast - dot_portable), 2 * (n / 32 + 8) * kEps * sum_abs * 1.01) << dtype_name(t);
  }
}

}  // namespace
}  // namespace unmask

namespace unmask {
namespace {

// quantize_acts against its definition on every path and thread count: per group d = amax/127, q = the exact product
// x · (1/d) (exact in double) rounded to nearest even, the 16-value sums exact; so the AVX-512 row kernel and the
// portable loop give the same bits. Rows: normal values, zeros, ties (d = 1, x = k + 1/2), tiny and huge values.
TEST(Quant, QuantizeActsIsItsDefinitionOnEveryPath) {
  const int T = 37, n = 768;
  Rng rng(21);
  std::vector<float> x(size_t(T) * n);
  for (auto& f : x) f = float(rng.normal());
  std::fill(x.begin() + n, x.begin() + 2 * n, 0.0f);  // row 1: zeros (d = 0)
  for (int i = 0; i < n; ++i) x[size_t(2 * n + i)] = i % 32 == 0 ? 127.f : float(i % 254 - 127) + 0.5f;  // ties
  for (int i = 0; i < n; ++i) x[size_t(3 * n + i)] = x[size_t(4 * n + i)] * 1e-30f;
  for (int i = 0; i < n; ++i) x[size_t(5 * n + i)] = x[size_t(6 * n + i)] * 1e30f;
  for (DType t : {DType::Q8_0, DType::Q4_K}) {
    const int group = act_group(t);
    std::vector<QuantizedActs> got;
    for (const auto& [path, features] : paths())
      for (int threads : {1, 2}) {
        ScopedCpuFeatures scoped(features);
        const int saved = omp_get_max_threads();
        omp_set_num_threads(threads);
        got.emplace_back();
        quantize_acts(t, x.data(), T, n, got.back());
        omp_set_num_threads(saved);
      }
    const QuantizedActs& a = got[0];
    for (int r = 0; r < T; ++r)
      for (int g = 0; g < n; g += group) {
        float amax = 0;
        for (int j = 0; j < group; ++j) amax = std::max(amax, std::fabs(x[size_t(r * n + g + j)]));
        const float d = amax / 127.f, id = d != 0 ? 1.f / d : 0.f;
        ASSERT_EQ(a.d[size_t((r * n + g) / 32)], d) << dtype_name(t) << " row " << r << " group " << g;
        for (int j = 0; j < group; ++j) {
          const double want = std::nearbyint(double(x[size_t(r * n + g + j)]) * double(id));
          ASSERT_EQ(a.q[size_t(r * n + g + j)], int8_t(want)) << dtype_name(t) << " row " << r << " value " << g + j;
        }
      }
    for (size_t i = 0; i < a.sum16.size(); ++i) {
      int s = 0;
      for (size_t l = 0; l < 16; ++l) s += a.q[16 * i + l];
      ASSERT_EQ(a.sum16[i], s) << dtype_name(t) << " sum " << i;
    }
    for (size_t k = 1; k < got.size(); ++k) {
      EXPECT_EQ(0, std::memcmp(a.q.data(), got[k].q.data(), a.q.size())) << dtype_name(t) << " run " << k;
      EXPECT_EQ(0, std::memcmp(a.d.data(), got[k].d.data(), a.d.size() * 4)) << dtype_name(t) << " run " << k;
      EXPECT_EQ(0, std::memcmp(a.sum16.data(), got[k].sum16.data(), a.sum16.size() * 2)) << dtype_name(t) << " run " << k;
    }
  }
}

}  // namespace
}  // namespace unmask
