// silu/swiglu against ref. silu(x) = x / (1 + e^-x): the vector exp is within a few eps, the sum, the division and
// (for swiglu) the product add one each: |out - ref| <= 8·eps·|ref| + FLT_MIN (for x < -88, e^-x overflows f32 and
// the exact result is subnormal or below).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "unmask/base/rng.h"
#include "unmask/kernels/activations.h"

namespace unmask {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

std::vector<float> inputs(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(n);
  for (auto& v : x) v = float(rng.normal() * 6);
  const float special[] = {0.0f, -0.0f, 88.0f, -88.0f, 100.0f, -100.0f, 1e30f, -1e30f, 1e-30f, -20.5f};
  for (int i = 0; i < 10 && i < n; ++i) x[size_t(i * 7) % n] = special[i];
  return x;
}

void expect_close(const std::vector<float>& out, const std::vector<float>& ref, const char* what) {
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == ref[i]) continue;  // covers ±inf (1e30 · 1e30 in swiglu)
    ASSERT_LE(std::abs(double(out[i]) - ref[i]), 8 * kEps * std::abs(ref[i]) + std::numeric_limits<float>::min())
        << what << " n " << out.size() << " at " << i;
  }
}

TEST(Activations, SiluMatchesRef) {
  for (int64_t n : {1, 7, 33, 100, 4097, 20000}) {
    auto x = inputs(n, uint64_t(n));
    std::vector<float> out(n, NAN), ref(n);
    silu_forward(out.data(), x.data(), n);
    ref::silu_forward(ref.data(), x.data(), n);
    expect_close(out, ref, "silu");
    silu_forward(x.data(), x.data(), n);  // in place
    EXPECT_EQ(x, out);
  }
}

TEST(Activations, SwigluMatchesRef) {
  for (int64_t n : {1, 7, 33, 100, 4097, 20000}) {
    auto g = inputs(n, uint64_t(n)), u = inputs(n, uint64_t(n) + 1);
    std::vector<float> out(n, NAN), ref(n);
    swiglu_forward(out.data(), g.data(), u.data(), n);
    ref::swiglu_forward(ref.data(), g.data(), u.data(), n);
    expect_close(out, ref, "swiglu");
    swiglu_forward(u.data(), g.data(), u.data(), n);  // out aliases up
    EXPECT_EQ(u, out);
  }
}

TEST(Activations, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {NAN, inf, 0.0f, 1.0f}, out(4);
  silu_forward(out.data(), x.data(), 4);
  EXPECT_TRUE(std::isnan(out[0]));
  EXPECT_EQ(out[1], inf);
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_NEAR(out[3], 1.0 / (1.0 + std::exp(-1.0)), 1e-7);
}

}  // namespace
}  // namespace unmask
