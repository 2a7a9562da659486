// The objectives' batches: which rows carry a loss, with which targets, weights and masks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "unmask/base/error.h"
#include "unmask/diffusion/objective.h"

namespace unmask {
namespace {

std::vector<int32_t> windows(int B, int T) {
  std::vector<int32_t> w(size_t(B) * (T + 1));
  std::iota(w.begin(), w.end(), 0);
  for (auto& x : w) x = x % 90;  // never the mask id 99
  return w;
}

TEST(Objective, ArPredictsTheNextTokenUnderACausalMask) {
  Objective o;
  Rng rng(1);
  const int B = 2, T = 5;
  auto w = windows(B, T);
  LossBatch lb = make_loss_batch(o, w, B, T, rng);
  ASSERT_EQ(lb.targets.size(), size_t(B * T));
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < T; ++i) {
      size_t r = size_t(b * T + i);
      EXPECT_EQ(lb.batch.tokens[r], w[size_t(b * (T + 1) + i)]);
      EXPECT_EQ(lb.targets[r], w[size_t(b * (T + 1) + i + 1)]);
      EXPECT_FLOAT_EQ(lb.weights[r], 1.0f / (B * T));
      EXPECT_EQ(lb.batch.spans[r].end0, i + 1);
    }
}

TEST(Objective, StratifiedTimesAreEvenlySpacedInRange) {
  Rng rng(2);
  auto t = stratified_times(8, 1e-3, rng);
  std::sort(t.begin(), t.end());
  for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], (1 - 1e-3) / 8, 1e-12);
  EXPECT_GE(t.front(), 1e-3);
  EXPECT_LE(t.back(), 1.0);
}

TEST(Objective, MdlmMasksAtRateTAndWeighsByOneOverT) {
  Objective o;
  o.kind = ObjectiveKind::kMDLM, o.mask_token = 99;
  const int B = 4, T = 4000;
  auto w = windows(B, T);
  Rng rng(3), same(3);
  LossBatch lb = make_loss_batch(o, w, B, T, rng);
  auto t = stratified_times(B, o.eps, same);  // the times the batch drew: the first draws of the same stream
  for (int b = 0; b < B; ++b) {
    int masked = 0;
    for (int i = 0; i < T; ++i) {
      int32_t tok = lb.batch.tokens[size_t(b * T + i)];
      masked += tok == 99;
      if (tok != 99) {
        EXPECT_EQ(tok, w[size_t(b * (T + 1) + i)]);
      }
      EXPECT_EQ(lb.batch.spans[size_t(b * T + i)].end0, T);  // bidirectional
    }
    double p = t[size_t(b)], frac = double(masked) / T;
    EXPECT_LE(std::abs(frac - p), 5 * std::sqrt(p * (1 - p) / T) + 1e-9) << "sequence " << b << ", t = " << p;
  }
  for (size_t r = 0; r < lb.targets.size(); ++r) {
    int row = lb.batch.rows[r], b = row / T;
    EXPECT_EQ(lb.batch.tokens[size_t(row)], 99);
    EXPECT_EQ(lb.targets[r], w[size_t(b * (T + 1) + row % T)]);
    EXPECT_NEAR(lb.weights[r], 1.0 / t[size_t(b)] / (B * T), 1e-6 * lb.weights[r]);
  }
}

TEST(Objective, Bd3SeesNoisyBlockAndCleanPastThroughTheXtX0Mask) {
  Objective o;
  o.kind = ObjectiveKind::kBD3, o.mask_token = 99, o.block = 4;
  const int B = 1, T = 10;  // blocks [0,4) [4,8) [8,10)
  auto w = windows(B, T);
  Rng rng(4);
  LossBatch lb = make_loss_batch(o, w, B, T, rng);
  ASSERT_EQ(lb.batch.tokens.size(), size_t(2 * T));
  for (int i = 0; i < T; ++i) {
    const int start = i / 4 * 4, end = std::min(start + 4, T);
    EXPECT_EQ(lb.batch.tokens[size_t(T + i)], w[size_t(i)]);  // the clean half
    KeySpan xt = lb.batch.spans[size_t(i)], x0 = lb.batch.spans[size_t(T + i)];
    EXPECT_EQ(xt.begin0, start);
    EXPECT_EQ(xt.end0, end);
    EXPECT_EQ(xt.begin1, T);
    EXPECT_EQ(xt.end1, T + start);
    EXPECT_EQ(x0.begin0, T);
    EXPECT_EQ(x0.end0, T + end);
    EXPECT_EQ(x0.begin1, x0.end1);
    EXPECT_EQ(lb.batch.pos[size_t(i)], i);
    EXPECT_EQ(lb.batch.pos[size_t(T + i)], i);
  }
  for (size_t r = 0; r < lb.targets.size(); ++r) {
    EXPECT_LT(lb.batch.rows[r], T);  // losses only on the noisy half
    EXPECT_EQ(lb.batch.tokens[size_t(lb.batch.rows[r])], 99);
  }
}

// Dream's layout: the logits of row p - 1 predict position p, so each masked position's loss sits on the row before
// it, and the first position, which has no row before it, is never masked.
TEST(Objective, ShiftedMdlmPutsEachLossOnTheRowBefore) {
  Objective o;
  o.kind = ObjectiveKind::kMDLM, o.mask_token = 99, o.shift = true;
  const int B = 3, T = 50;
  auto w = windows(B, T);
  Rng rng(5);
  LossBatch lb = make_loss_batch(o, w, B, T, rng);
  ASSERT_FALSE(lb.targets.empty());
  for (int b = 0; b < B; ++b) EXPECT_EQ(lb.batch.tokens[size_t(b * T)], w[size_t(b * (T + 1))]);  // first clean
  for (size_t r = 0; r < lb.targets.size(); ++r) {
    const int row = lb.batch.rows[r], b = row / T, p = row % T + 1;  // the position this row predicts
    ASSERT_LT(p, T);
    EXPECT_EQ(lb.batch.tokens[size_t(b * T + p)], 99) << "row " << row;
    EXPECT_EQ(lb.targets[r], w[size_t(b * (T + 1) + p)]) << "row " << row;
  }
  size_t masked = size_t(std::count(lb.batch.tokens.begin(), lb.batch.tokens.end(), 99));
  EXPECT_EQ(masked, lb.targets.size());
}

TEST(Objective, BadConfigurationsAreRefused) {
  ModelConfig c = preset_config("tiny");
  Objective o;
  o.kind = ObjectiveKind::kMDLM;
  EXPECT_THROW(o.validate(c), Error);  // no mask token
  o.kind = ObjectiveKind::kBD3, o.mask_token = 3;
  EXPECT_THROW(o.validate(c), Error);  // no block size
  o.block = 4, o.shift = true;
  EXPECT_THROW(o.validate(c), Error);  // bd3 with shifted logits
  o.kind = ObjectiveKind::kMDLM;
  EXPECT_THROW(o.validate(c), Error);  // shifted objective, unshifted model
  c.shift_logits = true;
  EXPECT_NO_THROW(o.validate(c));
  EXPECT_THROW(parse_objective("sedd2"), Error);
  EXPECT_THROW(parse_schedule("quadratic"), Error);
}

}  // namespace
}  // namespace unmask
