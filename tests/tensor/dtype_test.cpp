// f32 <-> bf16 and f32 <-> f16 conversions against references computed independently in double: every bf16 and
// every f16 value, a strided sweep over all 2^32 f32 bit patterns, and hand-built ties, subnormals, overflow, NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/tensor/dtype.h"

namespace unmask {
namespace {

float bits_f32(uint32_t u) { return std::bit_cast<float>(u); }

// Decodes binary16 from its fields (the oracle for f16_to_f32).
double f16_value(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1.0 + mant / 1024.0, exp - 15);
  if (exp == 31) v = mant ? NAN : INFINITY;
  return sign ? -v : v;
}

// Round |x| (finite) to the grid of a format with `mant_bits` fraction bits, smallest normal exponent emin and
// largest finite max_finite, ties to even; returns +inf on overflow. All steps are exact in double.
double round_to_format(double a, int mant_bits, int emin, double max_finite) {
  if (a == 0) return 0;
  int e = std::max(std::ilogb(a), emin);
  double ulp = std::ldexp(1.0, e - mant_bits);
  double q = a / ulp, r = std::floor(q), frac = q - r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0)) r += 1;
  double v = r * ulp;
  double overflow = max_finite + std::ldexp(1.0, std::ilogb(max_finite) - mant_bits) / 2;  // halfway to 2^(emax+1)
  return v >= overflow || a >= overflow ? INFINITY : v;
}

void check_bf16(uint32_t u) {
  const float f = bits_f32(u);
  const uint16_t b = f32_to_bf16(f);
  if (std::isnan(f)) {
    ASSERT_TRUE(std::isnan(bf16_to_f32(b))) << std::hex << u;
    ASSERT_TRUE(b & 0x40) << "quiet NaN expected for " << std::hex << u;
    return;
  }
  const double want = round_to_format(std::abs(double(f)), 7, -126, 0x1.fep127);
  ASSERT_EQ(double(std::abs(bf16_to_f32(b))), want) << "f32 bits 0x" << std::hex << u;
  ASSERT_EQ(b >> 15, u >> 31) << "sign of 0x" << std::hex << u;
}

void check_f16(uint32_t u) {
  const float f = bits_f32(u);
  const uint16_t h = f32_to_f16(f);
  if (std::isnan(f)) {
    ASSERT_TRUE(std::isnan(f16_to_f32(h))) << std::hex << u;
    return;
  }
  const double want = round_to_format(std::abs(double(f)), 10, -14, 65504.0);
  ASSERT_EQ(std::abs(f16_value(h)), want) << "f32 bits 0x" << std::hex << u;
  ASSERT_EQ(h >> 15, u >> 31) << "sign of 0x" << std::hex << u;
}

TEST(Dtype, Bf16DecodesEveryValueAndRoundTrips) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_f32(uint16_t(b));
    ASSERT_EQ(std::bit_cast<uint32_t>(f), b << 16);
    if (!std::isnan(f)) {
      ASSERT_EQ(f32_to_bf16(f), b) << std::hex << b;
    }
  }
}

TEST(Dtype, F16DecodesEveryValueAndRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    const double want = f16_value(uint16_t(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      continue;
    }
    ASSERT_EQ(double(f), want) << std::hex << h;
    ASSERT_EQ(std::signbit(f), bool(h >> 15)) << std::hex << h;
    ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

// A stride coprime to 2^32 visits patterns of every exponent and both signs; the low bits around the rounding
// point are covered by the sweep below.
TEST(Dtype, RoundingMatchesDoubleReferenceOverF32Sweep) {
  for (uint64_t i = 0; i < (1ull << 32); i += 1021) {
    check_bf16(uint32_t(i));
    check_f16(uint32_t(i));
    if (HasFatalFailure()) return;
  }
  // Every pattern of the 16 low bits of a few exponents: all ties and near-ties for bf16 (and f16 subnormals).
  for (uint32_t hi : {0x3f80u, 0x0000u, 0x0080u, 0x7f7fu, 0xb3c0u, 0x3380u, 0x4780u})
    for (uint32_t lo = 0; lo < 65536; ++lo) {
      check_bf16(hi << 16 | lo);
      check_f16(hi << 16 | lo);
      if (HasFatalFailure()) return;
    }
}

TEST(Dtype, HandBuiltCases) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f808000)), 0x3f80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f818000)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(bits_f32(0x3f808001)), 0x3f81);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x7f7fffff)), 0x7f80);  // FLT_MAX overflows to inf
  EXPECT_EQ(f32_to_bf16(bits_f32(0x7f7f7fff)), 0x7f7f);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x00008000)), 0x0000);  // subnormal tie to even (zero)
  EXPECT_EQ(f32_to_bf16(bits_f32(0x00018000)), 0x0002);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(f32_to_bf16(bits_f32(0x7f800001)), 0x7fc0);  // signalling NaN comes back quiet, not inf
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65519.99f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);  // halfway to 65536 ties to inf
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);  // tie to even: zero
  EXPECT_EQ(f32_to_f16(0x1.8p-25f), 0x0001);
  EXPECT_EQ(f32_to_f16(0x1.ffcp-15f), 0x0400);  // largest subnormal + carry into the smallest normal
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0xfbff), -65504.0f);
}

TEST(Dtype, ArrayConversionsAndNames) {
  std::vector<float> x = {1.5f, -2.25f, 1e-8f, 70000.0f}, y(4);
  std::vector<uint16_t> h(4);
  from_f32(DType::F16, x.data(), h.data(), 4);
  to_f32(DType::F16, h.data(), y.data(), 4);
  EXPECT_EQ(y[0], 1.5f);
  EXPECT_EQ(y[1], -2.25f);
  EXPECT_EQ(y[2], f16_to_f32(f32_to_f16(1e-8f)));
  EXPECT_EQ(y[3], INFINITY);
  from_f32(DType::BF16, x.data(), h.data(), 4);
  to_f32(DType::BF16, h.data(), y.data(), 4);
  EXPECT_EQ(y[1], -2.25f);
  EXPECT_EQ(parse_dtype("BF16"), DType::BF16);
  EXPECT_THROW(parse_dtype("f8"), Error);
  EXPECT_EQ(row_bytes(DType::Q8_0, 64), 68u);
  EXPECT_THROW(row_bytes(DType::Q8_0, 33), Error);
}

}  // namespace
}  // namespace unmask
