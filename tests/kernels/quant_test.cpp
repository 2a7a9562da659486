// Quantized blocks (Q8_0, Q4_0, Q4_K, Q6_K): layouts, reference quantization against llama.cpp's own bounds,
// fast kernels against the scalar twins.
//
// llama.cpp's tests/test-quantize-fns.cpp, reproduced: data x_i = 0.1 + 2·cos(i + offset), 4096 values;
//   total error  = sqrt(Σ (dequantize(quantize(x)) - x)²) / n        <= 0.002 (MAX_QUANTIZATION_TOTAL_ERROR)
//   dot error    = |vec_dot(quantize(x), y) - Σ x·y| / n              <= 0.02  (MAX_DOT_PRODUCT_ERROR)
// (their "rmse" divides sqrt of the sum by n, not by sqrt(n); we also check the true per-value RMS below.)
//
// fast vec_dot vs ref::vec_dot: the fast dot quantizes x to int8 with step d_x = max|x| / 127 over its group (32
// values for Q8_0/Q4_0, 256 for the K-quants), so each x_i moves by at most d_x/2 (plus f32 rounding of x·(1/d_x)),
// and the integer sums are exact; the float part adds at most a few eps per block:
//   |fast - ref| <= Σ_i |w_i| · 0.5·d_x(i) · (1 + 1e-5)  +  8·eps·Σ_i |w_i x_i|  (+ tiny absolute slack).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
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
const DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K};

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
  EXPECT_EQ(dtype_info(DType::Q4_K).block_bytes, int(sizeof(BlockQ4_K)));
  EXPECT_EQ(dtype_info(DType::Q6_K).block_bytes, int(sizeof(BlockQ6_K)));
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
  for (DType t : kTypes) {
    auto q = quantize(t, x);
    std::vector<float> back(n);
    ref::dequantize_row(t, q.data(), back.data(), n);
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += std::pow(double(back[size_t(i)]) - x[size_t(i)], 2);
    const double total_error = std::sqrt(ss) / n;
    EXPECT_LE(total_error, 0.002) << dtype_name(t);
    const double dot_error = std::fabs(vec_dot(t, n, q.data(), y.data()) - dot_ref) / n;
    EXPECT_LE(dot_error, 0.02) << dtype_name(t);
  }
}

// True RMS of the round trip on U[-1, 1]. One rounding to a grid of step s has RMS s/sqrt(12); the bounds allow
// 1.3x that for the rounded (f16 / 6-bit) scales and clamping. Steps: Q8_0 max/127 ≈ 1/127; Q4_0 max/8 ≈ 1/8;
// Q4_K (range ≈ 2)/15; Q6_K max/32 ≈ 1/32.
TEST(Quant, RoundTripRmsOnUniform) {
  Rng rng(7);
  const int n = 4096;
  const auto x = uniform(rng, n, -1, 1);
  const double step[] = {1.0 / 127, 1.0 / 8, 2.0 / 15, 1.0 / 32};
  for (int k = 0; k < 4; ++k) {
    const DType t = kTypes[k];
    auto q = quantize(t, x);
    std::vector<float> back(n);
    dequantize_row(t, q.data(), back.data(), n);
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += std::pow(double(back[size_t(i)]) - x[size_t(i)], 2);
    const double rms = std::sqrt(ss / n);
    EXPECT_LE(rms, 1.3 * step[k] / std::sqrt(12.0)) << dtype_name(t);
    EXPECT_GT(rms, 0.2 * step[k] / std::sqrt(12.0)) << dtype_name(t);  // really quantized
  }
}

TEST(Quant, FastMatchesRefOnOddRowLengths) {
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    Rng rng(11);
    for (DType t : kTypes)
      for (int n : {256, 768, 4096 + 256}) {
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
      const size_t bb = size_t(dtype_info(t).block_bytes), d_off = t == DType::Q6_K ? 208 : 0;  // f16 d
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
    const int n = 1024 + 256;
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
