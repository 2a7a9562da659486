// softmax_forward against ref. p_j = exp(x_j - m) / Σ: the subtraction rounds the exponent by eps·|x_j - m|, the
// vector exp adds a few eps, the f32 sum of V terms V·eps, the reciprocal and product 2 eps:
// |p - ref| <= ((V + 8) + |x_j - m|)·eps·ref + FLT_MIN (results in the subnormal range lose relative precision).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/softmax.h"

namespace unmask {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();
constexpr float kInf = std::numeric_limits<float>::infinity();

void check_softmax(int T, int V, double sd, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(size_t(T) * V);
  for (auto& v : x) v = rng.uniform() < 0.1 ? -kInf : float(rng.normal() * sd);
  for (int t = 0; t < T; ++t) x[size_t(t) * V + rng.below(V)] = float(rng.normal() * sd);  // one finite per row
  std::vector<float> out(x.size(), NAN), ref(x.size());
  softmax_forward(out.data(), x.data(), T, V);
  ref::softmax_forward(ref.data(), x.data(), T, V);
  for (int t = 0; t < T; ++t) {
    float m = -kInf;
    for (int j = 0; j < V; ++j) m = std::max(m, x[size_t(t) * V + j]);
    for (int j = 0; j < V; ++j) {
      const size_t i = size_t(t) * V + j;
      if (x[i] == -kInf) {
        ASSERT_EQ(out[i], 0.0f) << "-inf entry at (" << t << ", " << j << ")";
        continue;
      }
      const double bound = (V + 8 + std::abs(double(x[i]) - m)) * kEps * ref[i] + std::numeric_limits<float>::min();
      ASSERT_LE(std::abs(double(out[i]) - ref[i]), bound) << "T " << T << " V " << V << " at (" << t << ", " << j << ")";
    }
  }
}

TEST(Softmax, MatchesRefOnAwkwardShapes) {
  uint64_t seed = 1;
  for (int T : {1, 7, 33})
    for (int V : {1, 7, 33, 100, 1000, 4099})
      for (double sd : {1.0, 10.0, 1e4}) check_softmax(T, V, sd, seed++);  // 1e4: exp overflows without the max
}

TEST(Softmax, InPlaceAndExactCases) {
  std::vector<float> x = {0.0f, 0.0f, -kInf, 0.0f, std::log(3.0f), -kInf};
  softmax_forward(x.data(), x.data(), 2, 3);
  EXPECT_FLOAT_EQ(x[0], 0.5f);
  EXPECT_FLOAT_EQ(x[1], 0.5f);
  EXPECT_EQ(x[2], 0.0f);
  EXPECT_FLOAT_EQ(x[3], 0.25f);
  EXPECT_FLOAT_EQ(x[4], 0.75f);
  EXPECT_EQ(x[5], 0.0f);
}

// Documented: a row with no finite entry has no distribution; the call throws naming the row.
TEST(Softmax, AllMinusInfinityRowThrows) {
  std::vector<float> x = {1.0f, 2.0f, -kInf, -kInf}, out(4);
  try {
    softmax_forward(out.data(), x.data(), 2, 2);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ref::softmax_forward(out.data(), x.data(), 2, 2), Error);
}

}  // namespace
}  // namespace unmask
