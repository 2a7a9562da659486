// Self-speculation (spec.cpp) is lossless: greedy, its tokens are AR's token for token (a random joint model, where
// drafts are mostly refused and every rollback path runs, fused and not, many draft lengths); sampled, its tokens
// follow AR's distribution (hand-built logits whose AR and draft distributions differ, a chi-square test that the
// always-accept rule fails). The same with a separate drafter for a causal model.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "fake_backbone.h"
#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/model/model.h"
#include "unmask/sampling/sampler.h"

namespace unmask {
namespace {

Model random_joint_model(uint64_t seed) {
  ModelConfig c = preset_config("tiny");
  c.arch = "llama", c.mask = MaskKind::kCausal, c.draft_block = 4;
  c.mask_token = c.vocab - 1, c.eos_token = -1, c.ctx = 64;
  return Model::random(c, seed);
}

std::vector<int32_t> tokens(Model& m, SamplerKind kind, std::vector<int32_t> prompt, int n, int draft, bool fused,
                            bool adaptive = false) {
  SamplerConfig c;
  c.kind = kind, c.gen_length = n, c.draft_length = draft, c.fused = fused, c.adaptive_draft = adaptive;
  ModelBackbone bb(m);
  return generate(bb, c, prompt).canvas;
}

TEST(Spec, GreedyIsArTokenForTokenOnARandomJointModel) {
  Model m = random_joint_model(3);
  int prompts = 0;
  for (const std::vector<int32_t>& prompt : {std::vector<int32_t>{5}, {17, 4, 99}, {200, 201, 202, 203, 9, 9, 1}})
    for (int n : {1, 7, 30}) {
      const std::vector<int32_t> ar = tokens(m, SamplerKind::kAr, prompt, n, 0, true);
      for (int draft : {1, 4, 9})
        for (bool fused : {true, false})
          for (bool adaptive : {false, true})
            EXPECT_EQ(tokens(m, SamplerKind::kSpec, prompt, n, draft, fused, adaptive), ar)
                << "prompt " << prompts << ", " << n << " tokens, draft " << draft << (fused ? " fused" : "")
                << (adaptive ? " adaptive" : "");
      ++prompts;
    }
}

TEST(Spec, SpeculationSavesPassesWhenTheDraftsAreRight) {
  // Hand-built: AR's next token is always (last + 1) mod 5, and the mask rows draft exactly that sequence: every
  // draft is kept, so each pass commits its drafts and AR's bonus.
  ModelConfig c = testing::fake_config(MaskKind::kCausal);
  c.draft_block = 4, c.eos_token = -1;
  testing::FakeBackbone bb(c, [](std::span<const int32_t> seq, int row, float* out) {
    int back = 0;  // a mask row predicts its own position: count back to the last real token
    while (seq[size_t(row - back)] == 7) ++back;
    const int next = (seq[size_t(row - back)] + (back == 0 ? 1 : back)) % 5;
    for (int v = 0; v < 8; ++v) out[v] = v == next ? 5.0f : 0.0f;
  });
  std::vector<int32_t> want{2};
  for (int i = 0; i < 20; ++i) want.push_back((want.back() + 1) % 5);
  for (bool adaptive : {false, true}) {  // adaptive: every round kept all, so the length stays at its most
    SamplerConfig s;
    s.kind = SamplerKind::kSpec, s.gen_length = 20, s.adaptive_draft = adaptive;
    const GenerateResult r = generate(bb, s, std::vector<int32_t>{2});
    EXPECT_EQ(r.canvas, want);
    EXPECT_EQ(r.stats.accepted, r.stats.drafted) << "every draft right";
    // The prompt's pass gives AR's first token and drafts nothing (AR's bits: spec.cpp); then ~4 tokens a pass.
    EXPECT_LE(r.stats.forward_passes, 7) << "about four tokens a pass, not one";
  }
}

// AR's distribution p and the drafts' q over tokens 0..5 (6 is EOS, never drawn; 7 the mask).
const double kP[6] = {0.40, 0.25, 0.15, 0.10, 0.05, 0.05};
const double kQ[6] = {0.05, 0.10, 0.30, 0.30, 0.15, 0.10};

double chi_square(const std::vector<int>& counts, const double* p) {
  int n = 0;
  for (int x : counts) n += x;
  double chi = 0;
  for (size_t v = 0; v < counts.size(); ++v) chi += std::pow(counts[v] - n * p[v], 2) / (n * p[v]);
  return chi;
}

// Logits whose softmax is d over tokens 0..5 (EOS and the mask never drawn).
void logits_of(const double* d, float* out) {
  for (int v = 0; v < 8; ++v) out[v] = v < 6 ? float(std::log(d[v])) : -1e30f;
}

// Six tokens sampled after the prompt {0}, 3000 seeds: every generated token counted, with the drafts.
struct Tally {
  std::vector<int> counts = std::vector<int>(6, 0);
  int drafted = 0, accepted = 0;
};
Tally sample_many(Backbone& bb, Backbone* drafter, int draft_length) {
  Tally t;
  for (uint64_t seed = 0; seed < 3000; ++seed) {
    SamplerConfig s;
    s.kind = SamplerKind::kSpec, s.gen_length = 6, s.temperature = 1, s.seed = seed, s.draft_length = draft_length;
    s.drafter = drafter;
    const GenerateResult r = generate(bb, s, std::vector<int32_t>{0});
    for (size_t i = 1; i < r.canvas.size(); ++i) ++t.counts[size_t(r.canvas[i])];
    t.drafted += r.stats.drafted, t.accepted += r.stats.accepted;
  }
  return t;
}

TEST(Spec, SampledTokensFollowArDistributionAndAcceptingEveryDraftWouldNot) {
  ModelConfig c = testing::fake_config(MaskKind::kCausal);
  c.draft_block = 3, c.eos_token = 6;
  testing::FakeBackbone bb(c, [](std::span<const int32_t> seq, int row, float* out) {
    logits_of(seq[size_t(row)] == 7 ? kQ : kP, out);
  });
  const Tally t = sample_many(bb, nullptr, 0);
  // 5 degrees of freedom: 20.5 is the 0.1% tail.
  EXPECT_LT(chi_square(t.counts, kP), 20.5) << "spec's tokens follow p";
  EXPECT_GT(t.drafted, 1000);
  EXPECT_GT(t.accepted, 0);
  EXPECT_LT(t.accepted, t.drafted) << "drafts from q are refused at times";
  std::vector<int> drafts(6, 0);
  // What accepting every draft would output: the drafts themselves, drawn from q. The same test refuses them.
  Rng g(7);
  for (int i = 0; i < 18000; ++i) {
    double u = g.uniform(), cum = 0;
    int v = 0;
    while (v < 5 && u >= (cum += kQ[v])) ++v;
    ++drafts[size_t(v)];
  }
  EXPECT_GT(chi_square(drafts, kP), 20.5) << "the test has the power to tell q from p";
}

// A separate drafter (--draft-model): a random bidirectional model (shifted like Dream, and not) or a random joint
// model drafts for a random causal model of the same vocabulary; the target's greedy tokens come out unchanged.
TEST(Spec, GreedyWithASeparateDrafterIsTheTargetsTokenForToken) {
  ModelConfig tc = preset_config("tiny");
  tc.eos_token = -1, tc.ctx = 64;
  Model target = Model::random(tc, 5);
  ModelConfig bc = tc;
  bc.mask = MaskKind::kBidirectional, bc.mask_token = bc.vocab - 1;
  ModelConfig sc = bc;
  sc.shift_logits = true;
  Model bidir = Model::random(bc, 6), shifted = Model::random(sc, 7), joint = random_joint_model(8);
  for (Model* dm : {&bidir, &shifted, &joint})
    for (const std::vector<int32_t>& prompt : {std::vector<int32_t>{5}, {17, 4, 99, 3}})
      for (int n : {1, 9, 30}) {
        const std::vector<int32_t> ar = tokens(target, SamplerKind::kAr, prompt, n, 0, true);
        for (int draft : {1, 4}) {
          ModelBackbone tb(target), db(*dm);
          SamplerConfig c;
          c.kind = SamplerKind::kSpec, c.gen_length = n, c.draft_length = draft, c.drafter = &db;
          const GenerateResult r = generate(tb, c, prompt);
          EXPECT_EQ(r.canvas, ar) << dm->config().arch << " " << mask_kind_name(dm->config().mask) << ", " << n
                                  << " tokens, draft " << draft;
          EXPECT_EQ(r.stats.draft_passes > 0, n > 1) << "one token to go: nothing to draft";
          EXPECT_EQ(r.stats.drafted > 0, n > 1);
        }
      }
}

// Sampled, with a drafter whose distribution q differs from the target's p: the tokens follow p.
TEST(Spec, SampledWithASeparateDrafterFollowsTheTarget) {
  ModelConfig tc = testing::fake_config(MaskKind::kCausal), dc = testing::fake_config(MaskKind::kBidirectional);
  tc.eos_token = dc.eos_token = 6;
  testing::FakeBackbone target(tc, [](std::span<const int32_t>, int, float* out) { logits_of(kP, out); });
  testing::FakeBackbone drafter(dc, [](std::span<const int32_t>, int, float* out) { logits_of(kQ, out); });
  const Tally t = sample_many(target, &drafter, 3);
  EXPECT_LT(chi_square(t.counts, kP), 20.5) << "the tokens follow the target's p, not the drafter's q";
  EXPECT_GT(t.drafted, 1000);
  EXPECT_GT(t.accepted, 0);
  EXPECT_LT(t.accepted, t.drafted);
}

TEST(Spec, ADrafterThatCannotDraftForTheTargetIsOneClearError) {
  ModelConfig tc = preset_config("tiny");
  Model target = Model::random(tc, 1);
  ModelConfig other = tc;
  other.mask = MaskKind::kBidirectional, other.mask_token = 100, other.vocab = tc.vocab + 1;
  ModelConfig causal = tc;
  causal.mask_token = 100;
  ModelConfig bidir = other;
  bidir.vocab = tc.vocab;
  Model wrong_vocab = Model::random(other, 2), plain = Model::random(causal, 3), good = Model::random(bidir, 4);
  auto error_of = [&](Model& t, Model& d, SamplerKind kind) -> std::string {
    ModelBackbone tb(t), db(d);
    SamplerConfig s;
    s.kind = kind, s.drafter = &db;
    try {
      generate(tb, s, std::vector<int32_t>{1, 2});
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(error_of(target, wrong_vocab, SamplerKind::kSpec).find("vocabulary"), std::string::npos);
  EXPECT_NE(error_of(target, plain, SamplerKind::kSpec).find("joint"), std::string::npos);
  EXPECT_NE(error_of(good, good, SamplerKind::kSpec).find("causally"), std::string::npos);
  EXPECT_NE(error_of(target, good, SamplerKind::kAr).find("--sampler spec"), std::string::npos);
  EXPECT_EQ(error_of(target, good, SamplerKind::kSpec), "no error");
}

TEST(Spec, BadInputIsOneClearError) {
  Model ar = Model::random(preset_config("tiny"), 1);  // a plain causal model
  ModelBackbone bb(ar);
  SamplerConfig s;
  s.kind = SamplerKind::kSpec;
  try {
    generate(bb, s, std::vector<int32_t>{1, 2});
    FAIL() << "spec ran on a model that cannot draft";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--objective joint"), std::string::npos) << e.what();
  }
  Model joint = random_joint_model(4);
  ModelBackbone jb(joint);
  s.draft_length = -1;
  EXPECT_THROW(generate(jb, s, std::vector<int32_t>{1}), Error);
  s.draft_length = 2;
  EXPECT_THROW(generate(jb, s, std::vector<int32_t>{}), Error) << "no prompt";
}

}  // namespace
}  // namespace unmask
