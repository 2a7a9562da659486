// rmsnorm_forward against ref. The sum of squares of C terms in f32 has relative error <= C·eps (any order); the
// square root halves it, the reciprocal, the mean and the two products add a few eps: |out - ref| <= (C + 8)·eps·
// |x·rstd·w|. With rows of tiny values (mean x² ≈ 1e-6) a misplaced eps (1e-5) moves the result far outside that.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "unmask/base/rng.h"
#include "unmask/kernels/norm.h"

namespace unmask {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

void check_rmsnorm(int T, int C, double x_scale, uint64_t seed, bool in_place) {
  Rng rng(seed);
  std::vector<float> x(size_t(T) * C), w(C);
  for (auto& v : x) v = float(rng.normal() * x_scale);
  for (auto& v : w) v = float(rng.normal());
  const float eps = 1e-5f;
  std::vector<float> out(x.size(), NAN), ref(x.size()), rstd(T, NAN), ref_rstd(T);
  ref::rmsnorm_forward(ref.data(), ref_rstd.data(), x.data(), w.data(), T, C, eps);
  if (in_place) out = x;
  rmsnorm_forward(out.data(), rstd.data(), in_place ? out.data() : x.data(), w.data(), T, C, eps);
  for (int t = 0; t < T; ++t) {
    double ss = 0;
    for (int c = 0; c < C; ++c) ss += double(x[t * C + c]) * x[t * C + c];
    const double r = 1.0 / std::sqrt(ss / C + eps);
    ASSERT_LE(std::abs(double(rstd[t]) - ref_rstd[t]), (C + 8) * kEps * r) << "rstd row " << t << " C " << C;
    for (int c = 0; c < C; ++c) {
      const double bound = (C + 8) * kEps * std::abs(x[t * C + c] * r * w[c]);
      ASSERT_LE(std::abs(double(out[t * C + c]) - ref[t * C + c]), bound)
          << "T " << T << " C " << C << " scale " << x_scale << " at (" << t << ", " << c << ")";
    }
  }
}

TEST(RmsNorm, MatchesRefOnAwkwardShapes) {
  uint64_t seed = 1;
  for (int T : {1, 7, 33, 100})
    for (int C : {1, 7, 33, 100, 384, 1000})
      for (double scale : {1.0, 1e-3, 30.0}) check_rmsnorm(T, C, scale, seed++, false);
}

TEST(RmsNorm, InPlace) { check_rmsnorm(9, 77, 1.0, 3, true); }

TEST(RmsNorm, NullRstdIsAllowed) {
  std::vector<float> x = {3, 4}, w = {1, 1}, out(2);
  rmsnorm_forward(out.data(), nullptr, x.data(), w.data(), 1, 2, 0.0f);
  // mean(x²) = 12.5: out = x / sqrt(12.5)
  EXPECT_NEAR(out[0], 3 / std::sqrt(12.5), 2e-7);
  EXPECT_NEAR(out[1], 4 / std::sqrt(12.5), 2e-7);
}

}  // namespace
}  // namespace unmask
