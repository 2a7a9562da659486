// AdamW, the learning-rate schedule and gradient clipping on values worked out by hand.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "unmask/base/rng.h"
#include "unmask/train/adamw.h"

namespace unmask {
namespace {

TEST(AdamW, OneStepMatchesTheFormulaWithAndWithoutDecay) {
  // p = 1, g = 0.5, lr = 0.1: m̂ = 0.5, v̂ = 0.25, so the Adam step is 0.5 / (0.5 + eps) ≈ 1, plus wd · p = 0.1.
  AdamW opt(2, {{0, 1, true}, {1, 1, false}}, {0.9f, 0.95f, 1e-8f, 0.1f});
  float p[2] = {1.0f, 1.0f}, g[2] = {0.5f, 0.5f};
  opt.step(p, g, 0.1f);
  const double adam = 0.5 / (0.5 + 1e-8);
  EXPECT_NEAR(p[0], 1.0 - 0.1 * (adam + 0.1), 1e-6);
  EXPECT_NEAR(p[1], 1.0 - 0.1 * adam, 1e-6);
  // Second step with g = 0: m = 0.045, v = 0.011875; bias corrections 1/0.19 and 1/0.0975.
  float q = p[1];
  g[1] = 0.0f;
  opt.step(p, g, 0.1f);
  const double m = 0.045 / 0.19, v = 0.011875 / 0.0975;
  EXPECT_NEAR(p[1], q - 0.1 * m / (std::sqrt(v) + 1e-8), 1e-6);
  EXPECT_EQ(opt.t(), 2);
}

TEST(AdamW, GroupsSkipNormsBiasesAndEmbeddings) {
  ModelConfig c = preset_config("tiny");
  c.qkv_bias = true;
  ModelWeights w = ModelWeights::random(c, 1);
  for (const auto& g : param_groups(w)) {
    std::string name;
    for (const auto& [spec, view] : w.tensors())
      if (w.offset_of(view) == g.offset) name = spec.name;
    bool matrix = name.ends_with(".weight") && !name.ends_with("norm.weight") && name != "token_embd.weight";
    EXPECT_EQ(g.decay, matrix) << name;
  }
}

TEST(LearningRate, WarmupThenCosineToTheMinimum) {
  EXPECT_FLOAT_EQ(lr_at(0, 1000, 100, 1e-3f, 1e-4f), 1e-5f);
  EXPECT_FLOAT_EQ(lr_at(99, 1000, 100, 1e-3f, 1e-4f), 1e-3f);
  EXPECT_FLOAT_EQ(lr_at(100, 1000, 100, 1e-3f, 1e-4f), 1e-3f);
  EXPECT_NEAR(lr_at(550, 1000, 100, 1e-3f, 1e-4f), 5.5e-4f, 1e-9);
  EXPECT_FLOAT_EQ(lr_at(1000, 1000, 100, 1e-3f, 1e-4f), 1e-4f);
}

TEST(ClipGradNorm, ScalesToTheLimitAndIsThreadIndependent) {
  float g[2] = {3.0f, 4.0f};
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 2, 1.0), 5.0);
  EXPECT_FLOAT_EQ(g[0], 0.6f);
  EXPECT_FLOAT_EQ(g[1], 0.8f);
  std::vector<float> a(300001);
  Rng r(5);
  for (auto& x : a) x = float(r.normal());
  auto b = a;
  omp_set_num_threads(1);
  double na = clip_grad_norm(a.data(), a.size(), 10.0);
  omp_set_num_threads(2);
  double nb = clip_grad_norm(b.data(), b.size(), 10.0);
  EXPECT_EQ(na, nb);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace unmask
