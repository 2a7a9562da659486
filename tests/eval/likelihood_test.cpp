// The likelihood estimators against exact values: the Monte-Carlo ELBO against the bound computed by enumerating
// every mask (for each noise schedule, shifted and block-causal models too), against a closed form on a model whose
// likelihood is known, LLaDA's conditional estimator against the enumerated conditional bound, and AR perplexity
// against a direct computation. The PyTorch check of AR perplexity is tests/reference/test_eval.py.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "../model/model_util.h"
#include "unmask/base/error.h"
#include "unmask/eval/likelihood.h"

namespace unmask {
namespace {

ModelConfig diffusion_config(const char* arch, MaskKind mask, int block = 0) {
  ModelConfig c = preset_config("tiny");
  c.vocab = 24, c.ctx = 64, c.arch = arch;
  c.shift_logits = arch_info(arch).shift_logits;
  c.mask = mask, c.block_size = block;
  c.mask_token = 23;
  return c;
}

// A random model with weights scaled up, so that its predictions are peaked and texts differ in likelihood.
Model peaked_model(const ModelConfig& c, uint64_t seed) {
  Model m = Model::random(c, seed);
  for (float& w : m.params()) w *= 3.0f;
  m.params_changed();
  return m;
}

// A random model whose layers add nothing to the residual stream (o and down projections zero): every masked
// position sees only the mask's embedding, so p(x_i | x_t) = q(x_i) for one distribution q, and the bound is
// exactly Σ_i −log q(x_i) whatever the schedule.
Model context_free_model(ModelConfig c) {
  Model m = Model::random(c, 5);
  auto p = m.params();
  for (const LayerWeights& l : m.weights().get().layers)
    for (const TensorView* t : {&l.wo, &l.w_down}) {
      const size_t off = m.weights().offset_of(*t), n = size_t(t->ne[0] * t->ne[1]);
      std::fill(p.begin() + int64_t(off), p.begin() + int64_t(off + n), 0.0f);
    }
  m.params_changed();
  return m;
}

// The Monte-Carlo estimate lands within 4 standard errors of the exact value, and its error is small.
void expect_within(const Likelihood& mc, double exact, const char* what) {
  EXPECT_GT(mc.se, 0.0) << what;
  EXPECT_LT(std::abs(mc.nll - exact), 4 * mc.se) << what << ": " << mc.nll << " ± " << mc.se << " vs " << exact;
  EXPECT_LT(mc.se, 0.05 * exact) << what << ": too few samples to say anything";
}

TEST(Elbo, MonteCarloMatchesEnumerationForEverySchedule) {
  Model m = peaked_model(diffusion_config("llada", MaskKind::kBidirectional), 11);
  const auto x = test::random_tokens(7, 23, 3);
  const Likelihood exact = exact_elbo(m, x);
  ASSERT_EQ(exact.count, 7);
  for (Schedule s : {Schedule::kLinear, Schedule::kCosine, Schedule::kLogLinear}) {
    const Likelihood mc = diffusion_elbo(m, x, {0, 2000, true, 9, {s, 1e-3}});
    expect_within(mc, exact.nll, std::string(schedule_name(s)).c_str());
    EXPECT_EQ(mc.count, 7);
    EXPECT_NEAR(std::accumulate(mc.token_nll.begin(), mc.token_nll.end(), 0.0), mc.nll, 1e-9);
  }
}

TEST(Elbo, IndependentSamplingAgreesToo) {
  Model m = Model::random(diffusion_config("llada", MaskKind::kBidirectional), 12);
  const auto x = test::random_tokens(6, 23, 5);
  expect_within(diffusion_elbo(m, x, {0, 3000, false, 1, {}}), exact_elbo(m, x).nll, "independent");
}

TEST(Elbo, ContextFreeModelHasClosedFormBound) {
  Model m = context_free_model(diffusion_config("llada", MaskKind::kBidirectional));
  const auto x = test::random_tokens(10, 23, 6);
  std::vector<int32_t> all_masks(x.size(), 23);
  const auto logits = test::full_logits(m, all_masks);  // row 0: q
  double z = 0, want = 0;
  for (int v = 0; v < 24; ++v) z += std::exp(double(logits[size_t(v)]));
  for (int32_t t : x) want += std::log(z) - logits[size_t(t)];
  const Likelihood mc = diffusion_elbo(m, x, {0, 1000, true, 2, {Schedule::kCosine, 1e-3}});
  expect_within(mc, want, "closed form");
  EXPECT_NEAR(exact_elbo(m, x).nll, want, 1e-4 * want);
}

TEST(Elbo, ShiftedModelNeverMasksTheFirstToken) {
  Model m = Model::random(diffusion_config("dream", MaskKind::kBidirectional), 13);
  const auto x = test::random_tokens(7, 23, 7);
  const Likelihood exact = exact_elbo(m, x);
  EXPECT_EQ(exact.count, 6);
  const Likelihood mc = diffusion_elbo(m, x, {0, 2000, true, 3, {}});
  EXPECT_EQ(mc.count, 6);
  expect_within(mc, exact.nll, "shifted");
}

TEST(Elbo, BlockBoundMatchesEnumerationPerBlock) {
  Model m = Model::random(diffusion_config("llada", MaskKind::kBlockCausal, 4), 14);
  const auto x = test::random_tokens(10, 23, 8);  // blocks of 4, 4, 2
  const Likelihood exact = exact_elbo(m, x);
  EXPECT_EQ(exact.windows, 3);
  const Likelihood mc = diffusion_elbo(m, x, {0, 1500, true, 4, {}});
  EXPECT_EQ(mc.method, "bd3-elbo");
  expect_within(mc, exact.nll, "block");
  // Not the bidirectional bound of the same weights.
  ModelConfig bi = m.config();
  bi.mask = MaskKind::kBidirectional, bi.block_size = 0;
  Model mb = Model::random(bi, 14);
  EXPECT_GT(std::abs(exact_elbo(mb, x).nll - exact.nll), 1e-3);
}

TEST(Elbo, WindowsAreBoundedSeparately) {
  Model m = Model::random(diffusion_config("llada", MaskKind::kBidirectional), 15);
  const auto x = test::random_tokens(10, 23, 9);
  const Likelihood a = exact_elbo(m, std::span(x).first(5)), b = exact_elbo(m, std::span(x).subspan(5));
  const Likelihood mc = diffusion_elbo(m, x, {5, 2000, true, 5, {}});
  EXPECT_EQ(mc.windows, 2);
  expect_within(mc, a.nll + b.nll, "two windows");
}

TEST(Elbo, ConditionalEstimatorIsUnbiased) {
  Model m = Model::random(diffusion_config("llada", MaskKind::kBidirectional), 16);
  const auto x = test::random_tokens(9, 23, 10);
  const std::span<const int32_t> prompt(x.data(), 4), answer(x.data() + 4, 5);
  const Likelihood exact = exact_elbo(m, x, 4);  // the answer's 5 tokens masked in every way, prompt clean
  EXPECT_EQ(exact.count, 5);
  const Likelihood mc = conditional_elbo(m, prompt, answer, 2000, 17);
  EXPECT_EQ(mc.count, 5);
  expect_within(mc, exact.nll, "conditional");
  // The mean over independent seeds of a few samples each is unbiased too.
  std::vector<double> runs;
  for (uint64_t seed = 0; seed < 200; ++seed) runs.push_back(conditional_elbo(m, prompt, answer, 5, seed).nll);
  const double mean = std::accumulate(runs.begin(), runs.end(), 0.0) / double(runs.size());
  double ss = 0;
  for (double r : runs) ss += (r - mean) * (r - mean);
  EXPECT_LT(std::abs(mean - exact.nll), 4 * std::sqrt(ss / double(runs.size() - 1) / double(runs.size())));
}

TEST(Elbo, RefusesWhatItCannotBound) {
  ModelConfig ar = preset_config("tiny");
  Model causal = Model::random(ar, 1);
  const std::vector<int32_t> x = {1, 2, 3};
  EXPECT_THROW(diffusion_elbo(causal, x, {}), Error);
  Model m = Model::random(diffusion_config("llada", MaskKind::kBidirectional), 1);
  EXPECT_THROW(diffusion_elbo(m, x, {0, 0, true, 0, {}}), Error);  // no samples
  EXPECT_THROW(diffusion_elbo(m, std::vector<int32_t>{1, 99}, {}), Error);  // outside the vocabulary
  EXPECT_THROW(ar_likelihood(m, x), Error);  // not causal
  EXPECT_THROW(conditional_elbo(m, x, {}, 4, 0), Error);  // empty answer
  EXPECT_THROW(exact_elbo(m, test::random_tokens(17, 23, 1)), Error);  // 2^17 masks
}

// exp(mean NLL) of the AR model, computed directly from full-sequence logits.
TEST(Perplexity, EqualsDirectComputation) {
  ModelConfig c = preset_config("tiny");
  c.vocab = 40, c.ctx = 16;
  Model m = Model::random(c, 21);
  const auto x = test::random_tokens(16, 40, 22);
  const auto logits = test::full_logits(m, x);
  double want = 0;
  for (size_t p = 1; p < x.size(); ++p) {
    const float* row = logits.data() + (p - 1) * 40;
    double z = 0;
    for (int v = 0; v < 40; ++v) z += std::exp(double(row[v]));
    want += std::log(z) - row[x[p]];
  }
  const Likelihood r = ar_likelihood(m, x);
  EXPECT_EQ(r.count, 15);
  EXPECT_EQ(r.windows, 1);
  EXPECT_NEAR(r.nll, want, 1e-4 * want);
  EXPECT_NEAR(r.ppl(), std::exp(want / 15), 1e-4 * r.ppl());
}

// A sliding window scores every token once; with stride < context a token sees more context than with disjoint
// windows, so the figures differ, and with the full context they equal the single pass.
TEST(Perplexity, SlidingWindowScoresEachTokenOnce) {
  ModelConfig c = preset_config("tiny");
  c.vocab = 40, c.ctx = 32;
  Model m = Model::random(c, 23);
  const auto x = test::random_tokens(30, 40, 24);
  const Likelihood full = ar_likelihood(m, x);
  const Likelihood disjoint = ar_likelihood(m, x, {8, 0}), sliding = ar_likelihood(m, x, {8, 3});
  EXPECT_EQ(disjoint.count, 29);
  EXPECT_EQ(sliding.count, 29);
  EXPECT_EQ(disjoint.windows, 5);  // starting at 0, 7, 14, 21, 28: each shares its first token with the previous
  EXPECT_EQ(sliding.windows, 9);   // starting at 0, 3, ..., 24
  EXPECT_NE(disjoint.nll, sliding.nll);
  EXPECT_NE(disjoint.nll, full.nll);
  // The second window (tokens 7..14) scores tokens 8..14 from its own tokens alone.
  const Likelihood w2 = ar_likelihood(m, std::span(x).subspan(7, 8));
  EXPECT_NEAR(w2.nll, std::accumulate(disjoint.token_nll.begin() + 7, disjoint.token_nll.begin() + 14, 0.0), 1e-6);
  EXPECT_NEAR(ar_likelihood(m, x, {32, 5}).nll, full.nll, 1e-9);
  EXPECT_THROW(ar_likelihood(m, x, {64, 0}), Error);  // longer than the model's context
  EXPECT_THROW(ar_likelihood(m, x, {8, 8}), Error);   // a stride of the whole window skips a token
  EXPECT_THROW(ar_likelihood(m, std::vector<int32_t>{1}), Error);
}

}  // namespace
}  // namespace unmask
