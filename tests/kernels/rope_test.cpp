// rope_forward against ref, and both against hand-computed rotations. Each output is a·cos - b·sin (or a·sin +
// b·cos) with cos and sin rounded to f32 (eps/2 each) and two products and a sum rounded: |out - ref| <=
// 3·eps·(|a| + |b|) for the input pair (a, b).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
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

// The table's rotation is rope_forward's bit for bit, for positions filled in one reserve() or in several.
TEST(Rope, TableGivesRopeForwardsBits) {
  uint64_t seed = 7;
  for (RopeLayout layout : {RopeLayout::kNorm, RopeLayout::kNeox})
    for (int D : {2, 40, 64, 128})
      for (float theta : {10000.0f, 5e5f}) {
        RopeTable table(D, theta);
        table.reserve(100);
        table.reserve(60);  // never shrinks
        ASSERT_EQ(table.size(), 100);
        table.reserve(3000);
        const int T = 37, H = 3;
        Rng rng(seed++);
        std::vector<float> x(size_t(T) * H * D);
        for (auto& v : x) v = float(rng.normal());
        std::vector<int32_t> pos(T);
        for (auto& p : pos) p = int32_t(rng.below(3000));
        pos[0] = 0, pos[1] = 2999, pos[2] = 99, pos[3] = 100;  // the ends and both sides of the first reserve
        auto fast = x, want = x;
        table.apply(fast.data(), pos.data(), T, H, layout);
        rope_forward(want.data(), pos.data(), T, H, D, layout, theta);
        for (size_t i = 0; i < x.size(); ++i)
          ASSERT_EQ(fast[i], want[i]) << "D " << D << " theta " << theta << " element " << i;
        if (D == 2) continue;  // one pair, angle pos·theta^0: no theta to tell apart
        // Control: the table of another theta differs.
        RopeTable other(D, theta * 2);
        other.reserve(3000);
        auto moved = x;
        other.apply(moved.data(), pos.data(), T, H, layout);
        EXPECT_NE(moved, fast);
      }
}

TEST(Rope, TableRefusesPositionsItDoesNotHold) {
  RopeTable table(8, 10000.0f);
  table.reserve(16);
  std::vector<float> x(8);
  for (int32_t p : {16, -1}) {
    try {
      table.apply(x.data(), &p, 1, 1, RopeLayout::kNorm);
      ADD_FAILURE() << "position " << p << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("outside the table's [0, 16)"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(RopeTable(7, 10000.0f), Error);
}

TEST(Rope, RejectsOddHeadSize) {
  std::vector<float> x(3);
  int32_t pos = 1;
  EXPECT_THROW(rope_forward(x.data(), &pos, 1, 1, 3, RopeLayout::kNorm, 10000.0f), Error);
}

}  // namespace
}  // namespace unmask
