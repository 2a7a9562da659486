// rope_forward against ref, and both against hand-computed rotations. Each output is a·cos - b·sin (or a·sin +
// b·cos) with cos and sin rounded to f32 (eps/2 each) and two products and a sum rounded: |out - ref| <=
// 3·eps·(|a| + |b|) for the input pair (a, b).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/rope.h"

namespace unmask {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

// Index of the partner of element e in its pair.
int partner(int e, int D, RopeLayout layout) {
  if (layout == RopeLayout::kNorm) return e ^ 1;
  return e < D / 2 ? e + D / 2 : e - D / 2;
}

TEST(Rope, MatchesRefOnAwkwardShapes) {
  uint64_t seed = 1;
  for (RopeLayout layout : {RopeLayout::kNorm, RopeLayout::kNeox})
    for (int T : {1, 7, 33})
      for (int H : {1, 3})
        for (int D : {2, 16, 40, 64, 72})
          for (float theta : {10000.0f, 1e6f}) {
            Rng rng(seed++);
            std::vector<float> x(size_t(T) * H * D);
            for (auto& v : x) v = float(rng.normal());
            std::vector<int32_t> pos(T);
            for (auto& p : pos) p = int32_t(rng.below(8192));
            auto fast = x, ref = x;
            rope_forward(fast.data(), pos.data(), T, H, D, layout, theta);
            ref::rope_forward(ref.data(), pos.data(), T, H, D, layout, theta);
            for (size_t i = 0; i < x.size(); ++i) {
              const size_t row = i / D * D;
              const int e = int(i % D);
              const double bound = 3 * kEps * (std::abs(x[i]) + std::abs(x[row + partner(e, D, layout)]));
              ASSERT_LE(std::abs(double(fast[i]) - ref[i]), bound)
                  << (layout == RopeLayout::kNorm ? "norm" : "neox") << " T " << T << " H " << H << " D " << D
                  << " element " << i;
            }
          }
}

// D = 4, theta = 100: pair 0 turns by pos·1, pair 1 by pos·100^(-1/2) = pos·0.1.
TEST(Rope, HandComputedRotations) {
  const int32_t pos[2] = {0, 1};
  for (bool use_ref : {false, true}) {
    auto run = [&](std::vector<float> x, RopeLayout layout) {
      (use_ref ? ref::rope_forward : rope_forward)(x.data(), pos, 2, 1, 4, layout, 100.0f);
      return x;
    };
    // kNorm: pairs (0, 1) and (2, 3). Row 0 (pos 0) is unchanged, exactly.
    auto n = run({1, 2, 3, 4, 1, 0, 0, 1}, RopeLayout::kNorm);
    EXPECT_EQ(n[0], 1.0f);
    EXPECT_EQ(n[3], 4.0f);
    EXPECT_NEAR(n[4], std::cos(1.0), 1e-7);
    EXPECT_NEAR(n[5], std::sin(1.0), 1e-7);
    EXPECT_NEAR(n[6], -std::sin(0.1), 1e-7);
    EXPECT_NEAR(n[7], std::cos(0.1), 1e-7);
    // kNeox: pairs (0, 2) and (1, 3).
    auto h = run({1, 2, 3, 4, 1, 0, 0, 1}, RopeLayout::kNeox);
    EXPECT_EQ(h[2], 3.0f);
    EXPECT_NEAR(h[4], std::cos(1.0), 1e-7);
    EXPECT_NEAR(h[6], std::sin(1.0), 1e-7);
    EXPECT_NEAR(h[5], -std::sin(0.1), 1e-7);
    EXPECT_NEAR(h[7], std::cos(0.1), 1e-7);
  }
}

TEST(Rope, RejectsOddHeadSize) {
  std::vector<float> x(3);
  int32_t pos = 1;
  EXPECT_THROW(rope_forward(x.data(), &pos, 1, 1, 3, RopeLayout::kNorm, 10000.0f), Error);
}

}  // namespace
}  // namespace unmask
