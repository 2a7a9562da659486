// The commit-count and selection rules of the reference samplers, on numbers where the answer is known.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "unmask/base/error.h"
#include "unmask/sampling/logits.h"
#include "unmask/sampling/transfer.h"

namespace unmask {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(Transfer, NumTransferTokensSpreadsTheRemainderOverTheFirstSteps) {
  EXPECT_EQ(num_transfer_tokens(8, 4), (std::vector<int>{2, 2, 2, 2}));
  EXPECT_EQ(num_transfer_tokens(8, 3), (std::vector<int>{3, 3, 2}));
  EXPECT_EQ(num_transfer_tokens(10, 4), (std::vector<int>{3, 3, 2, 2}));
  EXPECT_EQ(num_transfer_tokens(3, 5), (std::vector<int>{1, 1, 1, 0, 0}));
  EXPECT_EQ(num_transfer_tokens(0, 2), (std::vector<int>{0, 0}));
  EXPECT_THROW(num_transfer_tokens(4, 0), Error);
}

TEST(Transfer, SelectTopIsLargestFirstTiesToLowerIndexAndSkipsMinusInf) {
  std::vector<double> c{0.1, 0.9, -kInf, 0.5, 0.9, 0.3};
  EXPECT_EQ(select_top(c, 3), (std::vector<int>{1, 4, 3}));
  EXPECT_EQ(select_top(c, 10), (std::vector<int>{1, 4, 3, 5, 0}));
  EXPECT_TRUE(select_top(c, 0).empty());
}

TEST(Transfer, ThresholdCommitsTheTopOneAndEveryOneAboveTheThreshold) {
  EXPECT_EQ(threshold_count(std::vector<double>{0.95, 0.92, 0.5}, 0.9), 2);
  EXPECT_EQ(threshold_count(std::vector<double>{0.4, 0.3}, 0.9), 1);  // at least one per step
  EXPECT_EQ(threshold_count(std::vector<double>{0.99, 0.9, 0.9}, 0.9), 3);
  EXPECT_EQ(threshold_count(std::vector<double>{}, 0.9), 0);
}

TEST(Transfer, FactorRuleAdmitsNWhileConfidenceExceedsOneMinusFactorOverNPlusOne) {
  // factor 1: thresholds for the 2nd, 3rd, 4th position are 1 - 1/3, 1 - 1/4, 1 - 1/5 = 0.667, 0.75, 0.8.
  EXPECT_EQ(factor_count(std::vector<double>{0.5, 0.4}, 1.0), 1);
  EXPECT_EQ(factor_count(std::vector<double>{0.9, 0.7, 0.76, 0.1}, 1.0), 3);
  EXPECT_EQ(factor_count(std::vector<double>{0.9, 0.7, 0.74, 0.99}, 1.0), 2);  // stops at the first failure
  EXPECT_EQ(factor_count(std::vector<double>{0.99, 0.99, 0.99}, 1.0), 3);
}

TEST(Transfer, DreamTimeGridMatchesTorchLinspaceInFloat32) {
  // torch.linspace(1, 1e-3, 5) and (1, 1e-3, 11), printed by PyTorch 1.13 (Debian).
  EXPECT_EQ(dream_timesteps(4, 1e-3f),
            (std::vector<float>{1.0f, 0.750249981880188f, 0.5005000233650208f, 0.25075000524520874f, 0.001f}));
  std::vector<float> t10 = dream_timesteps(10, 1e-3f);
  EXPECT_EQ(t10[1], 0.9000999927520752f);
  EXPECT_EQ(t10[7], 0.30070000886917114f);
  EXPECT_EQ(t10[9], 0.10090000182390213f);
  // torch.linspace(1, 1e-3, 17)[8, 9, 15], from the vectorised part of torch's kernel
  std::vector<float> t16 = dream_timesteps(16, 1e-3f);
  EXPECT_EQ(t16.size(), 17u);
  EXPECT_EQ(t16[8], 0.5005000233650208f);
  EXPECT_EQ(t16[9], 0.43806251883506775f);
  EXPECT_EQ(t16[15], 0.06343752145767212f);
  std::vector<float> t128 = dream_timesteps(128, 1e-3f);
  EXPECT_EQ(t128[20], 0.8439062237739563f);
  EXPECT_EQ(t128[64], 0.5005000233650208f);
  EXPECT_EQ(t128[100], 0.21953125298023224f);
  // int(10 * (1 - s / t)) at each step, as torch computes it: 0 1 1 1 1 1 2 3 4, then everything.
  std::vector<int> want{0, 1, 1, 1, 1, 1, 2, 3, 4, 10};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(dream_transfer_count(10, i, t10), want[size_t(i)]) << "step " << i;
}

TEST(Transfer, SamplingWithoutReplacementIsDistinctAndFavoursHighConfidence) {
  std::vector<double> c{0.0, 5.0, 0.1, -kInf, 4.0};
  int first_is_1 = 0;
  for (uint64_t s = 0; s < 200; ++s) {
    Rng g(s);
    std::vector<int> p = sample_without_replacement(c, 3, 1.0, g);
    ASSERT_EQ(p.size(), 3u);
    EXPECT_NE(p[0], p[1]);
    EXPECT_NE(p[1], p[2]);
    EXPECT_NE(p[0], p[2]);
    for (int i : p) EXPECT_NE(i, 3);
    first_is_1 += p[0] == 1;
  }
  // softmax(0, 5, 0.1, 4): P(first = 1) = e^5 / (1 + e^5 + e^0.1 + e^4) = 0.724
  EXPECT_NEAR(first_is_1 / 200.0, 0.724, 0.1);
}

TEST(Logits, ArgmaxChoiceAndConfidences) {
  const float row[4] = {1.0f, 3.0f, 3.0f, 0.0f};
  Rng g(1);
  std::vector<double> work;
  TokenRule with_entropy;
  with_entropy.entropy = true;
  Choice c = choose_token(row, 4, with_entropy, g, work);
  EXPECT_EQ(c.token, 1);  // first maximum, as torch.argmax
  const double z = std::exp(1.0) + 2 * std::exp(3.0) + 1;
  EXPECT_NEAR(c.p_raw, std::exp(3.0) / z, 1e-12);
  EXPECT_NEAR(c.margin, 0.0, 1e-12);
  double ent = 0;
  for (float x : row) ent += std::exp(double(x)) / z * std::log(std::exp(double(x)) / z + 1e-10);
  EXPECT_NEAR(c.neg_entropy, ent, 1e-12);
  EXPECT_EQ(choose_token(row, 4, TokenRule{}, g, work).neg_entropy, 0.0);  // not asked for: not computed
  TokenRule raw_only;
  raw_only.processed = false;
  c = choose_token(row, 4, raw_only, g, work);
  EXPECT_EQ(c.token, 1);
  EXPECT_NEAR(c.p_raw, std::exp(3.0) / z, 1e-12);
  EXPECT_EQ(c.p, 0.0);
  TokenRule banned;
  banned.banned = 1;
  c = choose_token(row, 4, banned, g, work);
  EXPECT_EQ(c.token, 2);
  EXPECT_NEAR(c.p_raw, std::exp(3.0) / (z - std::exp(3.0)), 1e-12);
  TokenRule unchosen;
  unchosen.unchosen = 1;
  c = choose_token(row, 4, unchosen, g, work);
  EXPECT_EQ(c.token, 2);
  EXPECT_NEAR(c.p_raw, std::exp(3.0) / z, 1e-12);  // the mask keeps its share of the probability
}

TEST(Logits, FiltersTopKTopPMinP) {
  // p = softmax(log(0.5, 0.3, 0.15, 0.05))
  std::vector<double> base{std::log(0.5), std::log(0.3), std::log(0.15), std::log(0.05)};
  auto kept = [&](TokenRule r) {
    std::vector<double> z(base);
    filter_logits(z, r);
    int n = 0;
    for (double x : z) n += x > -kInf;
    return n;
  };
  TokenRule r;
  r.top_k = 2;
  EXPECT_EQ(kept(r), 2);
  r = {};
  r.top_p = 0.7;  // 0.5 < 0.7, 0.8 > 0.7: two kept
  EXPECT_EQ(kept(r), 2);
  r.top_p = 0.4;  // the top token always stays
  EXPECT_EQ(kept(r), 1);
  r = {};
  r.min_p = 0.2;  // p >= 0.1 kept
  EXPECT_EQ(kept(r), 3);
}

TEST(Logits, GumbelSamplingFollowsTheTemperedDistribution) {
  const float row[3] = {0.0f, std::log(2.0f), std::log(5.0f)};
  TokenRule r;
  r.temperature = 1;
  std::vector<double> work;
  int counts[3] = {0, 0, 0};
  for (uint64_t s = 0; s < 4000; ++s) {
    Rng g(s);
    counts[choose_token(row, 3, r, g, work).token]++;
  }
  EXPECT_NEAR(counts[0] / 4000.0, 0.125, 0.03);
  EXPECT_NEAR(counts[2] / 4000.0, 0.625, 0.03);
}

TEST(Logits, RepeatPenaltyDividesPositiveAndMultipliesNegativeOncePerToken) {
  float row[4] = {2.0f, -1.0f, 3.0f, 1.0f};
  const int32_t recent[] = {0, 1, 0};
  apply_repeat_penalty(row, 4, recent, 2.0);
  EXPECT_FLOAT_EQ(row[0], 1.0f);
  EXPECT_FLOAT_EQ(row[1], -2.0f);
  EXPECT_FLOAT_EQ(row[2], 3.0f);
}

}  // namespace
}  // namespace unmask
