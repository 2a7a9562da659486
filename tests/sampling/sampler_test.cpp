// Every sampler on hand-built logits where the right answer is known: which positions are committed at each step,
// in what order and how many; and the edge cases and bad input.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <numbers>

#include "fake_backbone.h"
#include "unmask/base/error.h"
#include "unmask/sampling/infill.h"
#include "unmask/sampling/sampler.h"
#include "unmask/sampling/transfer.h"

namespace unmask {
namespace {

using testing::FakeBackbone;
using testing::fake_config;
using Steps = std::vector<std::vector<int>>;

// Position p proposes token p % 5 with logit margin[p] (every other logit 0): p_raw = e^m / (e^m + 7).
FakeBackbone::Fn by_margin(std::vector<float> margin) {
  return [margin](std::span<const int32_t>, int row, float* out) {
    std::fill(out, out + 8, 0.0f);
    out[row % 5] = margin[size_t(row)];
  };
}

// Prompt [1, 2] and 8 positions to generate with margins 1 5 3 8 2 7 4 6 at positions 2..9.
const std::vector<float> kMargins{0, 0, 1, 5, 3, 8, 2, 7, 4, 6};
const std::vector<int32_t> kPrompt{1, 2};

struct Recorded {
  Steps committed;
  GenerateResult result;
};

Recorded run(Backbone& bb, const SamplerConfig& cfg, std::span<const int32_t> prompt = kPrompt) {
  Recorded r;
  r.result = generate(bb, cfg, prompt, [&](const StepEvent& e) {
    r.committed.emplace_back(e.committed.begin(), e.committed.end());
    return true;
  });
  return r;
}

SamplerConfig llada(int steps, int block) {
  SamplerConfig c;
  c.kind = SamplerKind::kLlada, c.gen_length = 8, c.steps = steps, c.block_length = block;
  return c;
}

TEST(Llada, CommitsTheMostConfidentPositionsTwoPerStep) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  Recorded r = run(bb, llada(4, 8));
  EXPECT_EQ(r.committed, (Steps{{5, 7}, {9, 3}, {8, 4}, {6, 2}}));
  for (int p = 2; p < 10; ++p) EXPECT_EQ(r.result.canvas[size_t(p)], p % 5);
  EXPECT_EQ(r.result.commit_step[5], 0);
  EXPECT_EQ(r.result.commit_step[2], 3);
  EXPECT_EQ(r.result.commit_step[0], -1);
  EXPECT_EQ(r.result.stats.forward_passes, 4);
  EXPECT_EQ(r.result.stats.generated, 8);
  EXPECT_EQ(r.result.stats.logit_rows, 8 + 6 + 4 + 2);  // only the masked rows
}

TEST(Llada, StepsNotDividingTheLengthSpreadTheRemainderFirst) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  EXPECT_EQ(run(bb, llada(3, 8)).committed, (Steps{{5, 7, 9}, {3, 8, 4}, {6, 2}}));
}

TEST(Llada, SemiAutoregressiveBlocksFinishBlockZeroFirst) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  EXPECT_EQ(run(bb, llada(4, 4)).committed, (Steps{{5, 3}, {4, 2}, {7, 9}, {8, 6}}));
}

TEST(Llada, BlockLongerThanTheGenerationIsOneBlock) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  EXPECT_EQ(run(bb, llada(4, 16)).committed, (Steps{{5, 7}, {9, 3}, {8, 4}, {6, 2}}));
}

TEST(Llada, MoreStepsThanMasksSkipsTheEmptySteps) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  Recorded r = run(bb, llada(16, 8));
  EXPECT_EQ(r.committed, (Steps{{5}, {7}, {9}, {3}, {8}, {4}, {6}, {2}}));
  EXPECT_EQ(r.result.stats.forward_passes, 8);
}

TEST(Llada, BlocksAndStepsThatDoNotDivideAreErrors) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  EXPECT_THROW(run(bb, llada(3, 4)), Error);  // 3 steps over 2 blocks
  EXPECT_THROW(run(bb, llada(4, 3)), Error);  // block 3 does not divide 8
}

TEST(Llada, EosLastAndForbidEos) {
  std::vector<float> m(kMargins);
  FakeBackbone::Fn eos_at_5 = [m](std::span<const int32_t>, int row, float* out) {
    std::fill(out, out + 8, 0.0f);
    out[row == 5 ? 6 : row % 5] = m[size_t(row)];
  };
  FakeBackbone bb(fake_config(), eos_at_5);
  SamplerConfig c = llada(4, 8);
  EXPECT_EQ(run(bb, c).committed[0], (std::vector<int>{5, 7}));
  c.eos_last = true;
  EXPECT_EQ(run(bb, c).committed, (Steps{{7, 9}, {3, 8}, {4, 6}, {2, 5}}));
  c.eos_last = false, c.forbid_eos = true;
  Recorded r = run(bb, c);
  EXPECT_EQ(r.result.canvas[5], 0);  // EOS banned: every other logit is 0, the first one wins
}

TEST(Llada, RandomRemaskingIsSeededAndCommitsTwoPerStep) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  SamplerConfig c = llada(4, 8);
  c.remasking = Remasking::kRandom, c.seed = 7;
  Recorded a = run(bb, c), b = run(bb, c);
  EXPECT_EQ(a.committed, b.committed);
  for (const auto& s : a.committed) EXPECT_EQ(s.size(), 2u);
  c.seed = 8;
  EXPECT_NE(run(bb, c).committed, a.committed);
}

TEST(Llada, ClassifierFreeGuidanceMasksThePromptInTheUnconditionalPass) {
  // cond: token 1 -> 2, token 2 -> 1.5; uncond (prompt masked): 2 and 0. Guided (cfg 1): 2 and 3.
  FakeBackbone::Fn fn = [](std::span<const int32_t> seq, int, float* out) {
    std::fill(out, out + 8, 0.0f);
    const bool uncond = seq[0] == 7;
    out[1] = 2.0f, out[2] = uncond ? 0.0f : 1.5f;
  };
  FakeBackbone bb(fake_config(), fn);
  SamplerConfig c = llada(2, 2);
  c.gen_length = 2;
  EXPECT_EQ(run(bb, c).result.canvas[2], 1);
  c.cfg_scale = 1;
  Recorded r = run(bb, c);
  EXPECT_EQ(r.result.canvas[2], 2);
  EXPECT_EQ(r.result.stats.positions_run, 2 * 2 * 4);  // two passes over the pair of 4-position sequences
}

TEST(Threshold, CommitsEveryConfidentPositionAndAtLeastOne) {
  // p_raw for margins 8 7 6 5 4: 0.9997 0.994 0.983 0.955 0.886
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  SamplerConfig c = llada(-1, 8);
  c.threshold = 0.9;
  Recorded r = run(bb, c);
  EXPECT_EQ(r.committed, (Steps{{5, 7, 9, 3}, {8}, {4}, {6}, {2}}));
  EXPECT_EQ(r.result.stats.forward_passes, 5);
  EXPECT_DOUBLE_EQ(r.result.stats.tokens_per_forward(), 8.0 / 5);
}

TEST(Threshold, FactorRule) {
  // factor 1: 2nd needs >= 0.667, 3rd >= 0.75, 4th >= 0.8, 5th >= 0.833, 6th >= 0.857 (p_raw of margin 3 = 0.74)
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  SamplerConfig c = llada(-1, 8);
  c.factor = 1;
  EXPECT_EQ(run(bb, c).committed[0], (std::vector<int>{5, 7, 9, 3, 8}));
}

TEST(Threshold, PrefixCacheRunsOnlyTheBlockAndAfterIt) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  SamplerConfig c = llada(-1, 4);
  c.threshold = 0.9, c.cache = CacheMode::kPrefix;
  Recorded cached = run(bb, c);
  c.cache = CacheMode::kNone;
  FakeBackbone plain(fake_config(), by_margin(kMargins));
  Recorded full = run(plain, c);
  EXPECT_EQ(cached.committed, full.committed);
  EXPECT_EQ(cached.result.canvas, full.result.canvas);
  // block 0 (positions 2..5: commits {5, 3}, {4}, {2}): a full pass, then spans from 2; block 1 (6..9: {7, 9},
  // {8}, {6}): a full pass, then spans from 6.
  EXPECT_EQ(bb.span_sizes, (std::vector<int>{10, 8, 8, 10, 4, 4}));
}

TEST(Dream, EntropyOrderWithShiftedLogitsAndTorchsTransferCounts) {
  // Row r predicts position r + 1 (shifted logits): token (r + 1) % 5 with margin kMargins[r + 1].
  FakeBackbone::Fn fn = [](std::span<const int32_t>, int row, float* out) {
    std::fill(out, out + 8, 0.0f);
    out[(row + 1) % 5] = kMargins[size_t(row + 1)];
  };
  ModelConfig mc = fake_config();
  mc.shift_logits = true;
  FakeBackbone bb(mc, fn);
  SamplerConfig c;
  c.kind = SamplerKind::kDream, c.gen_length = 8, c.steps = 4, c.alg = DreamAlg::kEntropy;
  Recorded r = run(bb, c);
  // counts int(8 * 0.24975) = 1, int(7 * 0.3329) = 2, int(5 * 0.499) = 2, then the remaining 3
  EXPECT_EQ(r.committed, (Steps{{5}, {7, 9}, {3, 8}, {4, 6, 2}}));
  for (int p = 2; p < 10; ++p) EXPECT_EQ(r.result.canvas[size_t(p)], p % 5) << p;
  c.alg = DreamAlg::kMaskgitPlus;
  EXPECT_EQ(run(bb, c).committed, r.committed);
  c.alg = DreamAlg::kTopkMargin;
  EXPECT_EQ(run(bb, c).committed, r.committed);
}

TEST(Dream, OriginRevealsEverythingByTheLastStep) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  SamplerConfig c;
  c.kind = SamplerKind::kDream, c.gen_length = 8, c.steps = 5, c.alg = DreamAlg::kOrigin, c.seed = 3;
  Recorded r = run(bb, c);
  EXPECT_EQ(r.result.output(6), (std::vector<int32_t>{2, 3, 4, 0, 1, 2, 3, 4}));
  EXPECT_LE(r.committed.size(), 5u);
}

TEST(Dream, AlgTempDrawsDistinctPositions) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  SamplerConfig c;
  c.kind = SamplerKind::kDream, c.gen_length = 8, c.steps = 4, c.alg = DreamAlg::kMaskgitPlus, c.alg_temp = 0.5;
  Recorded r = run(bb, c);
  std::vector<int> counts;
  for (auto& s : r.committed) counts.push_back(int(s.size()));
  EXPECT_EQ(counts, (std::vector<int>{1, 2, 2, 3}));
  EXPECT_EQ(r.result.output(6).size(), 8u);
}

TEST(Mdlm, DdpmCacheSkipsForwardsWithoutChangingTheOutput) {
  SamplerConfig c;
  c.kind = SamplerKind::kMdlm, c.gen_length = 8, c.steps = 40, c.seed = 11;
  FakeBackbone a(fake_config(), by_margin(kMargins)), b(fake_config(), by_margin(kMargins));
  Recorded cached = run(a, c);
  c.ddpm_cache = false;
  Recorded plain = run(b, c);
  EXPECT_EQ(cached.result.canvas, plain.result.canvas);
  EXPECT_EQ(cached.committed, plain.committed);
  EXPECT_LT(a.calls, b.calls);
  int changed = 0;
  for (auto& s : cached.committed) changed += !s.empty();
  EXPECT_LE(a.calls, changed + 1);
  EXPECT_EQ(cached.result.output(6), (std::vector<int32_t>{2, 3, 4, 0, 1, 2, 3, 4}));
}

TEST(Remdm, RemasksRevealedTokensAndFinishesWithNoMask) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  SamplerConfig c;
  c.kind = SamplerKind::kRemdm, c.gen_length = 8, c.steps = 32, c.seed = 5;
  c.remdm = RemdmSchedule::kRescale, c.eta = 1.0;
  int remasked = 0;
  GenerateResult r = generate(bb, c, kPrompt, [&](const StepEvent& e) {
    remasked += int(e.remasked.size());
    for (int p : e.remasked) EXPECT_GE(p, 2);  // the prompt is never remasked
    return true;
  });
  EXPECT_GT(remasked, 0);
  EXPECT_EQ(r.output(6), (std::vector<int32_t>{2, 3, 4, 0, 1, 2, 3, 4}));
  EXPECT_EQ(r.stats.generated, 8);
  for (auto cap : {RemdmSchedule::kCap, RemdmSchedule::kConf}) {
    c.remdm = cap, c.eta = 0.05;
    EXPECT_EQ(generate(bb, c, kPrompt).output(6).size(), 8u);
  }
}

// Block-causal: row r sees tokens [0, end of its block of 4); it proposes (sum of visible known tokens + r) % 5
// with margin r + 1, and EOS at position `eos_at`.
FakeBackbone::Fn block_causal(int eos_at) {
  return [eos_at](std::span<const int32_t> seq, int row, float* out) {
    std::fill(out, out + 8, 0.0f);
    int sum = row, end = std::min(int(seq.size()), (row / 4 + 1) * 4);
    for (int i = 0; i < end; ++i) sum += seq[size_t(i)] == 7 ? 0 : seq[size_t(i)];
    out[row == eos_at ? 6 : sum % 5] = float(row + 1);
  };
}

ModelConfig block_config() {
  ModelConfig mc = fake_config(MaskKind::kBlockCausal);
  mc.block_size = 4;
  return mc;
}

TEST(Bd3, BlocksInOrderAndTheExactCacheChangesNothing) {
  const std::vector<int32_t> prompt{1, 2, 3, 4, 1};  // one full block in the cache, one prompt token in block 1
  SamplerConfig c;
  c.kind = SamplerKind::kBd3, c.gen_length = 9, c.threshold = 0.99;
  FakeBackbone a(block_config(), block_causal(-1)), b(block_config(), block_causal(-1));
  Recorded cached = run(a, c, prompt);
  c.kv_cache = false;
  Recorded plain = run(b, c, prompt);
  EXPECT_EQ(cached.result.canvas, plain.result.canvas);
  EXPECT_EQ(cached.committed, plain.committed);
  EXPECT_EQ(cached.result.canvas.size(), 14u);
  // every step stays inside one block, blocks in order
  int last_block = 0;
  for (auto& s : cached.committed)
    for (int p : s) {
      EXPECT_GE(p / 4, last_block);
      last_block = p / 4;
    }
  for (int n : a.span_sizes) EXPECT_LE(n, 4);
}

TEST(Bd3, FirstHittingOnePerStepAndStopAtEos) {
  SamplerConfig c;
  c.kind = SamplerKind::kBd3, c.gen_length = 12, c.first_hitting = true, c.seed = 2;
  FakeBackbone bb(block_config(), block_causal(6));
  Recorded r = run(bb, c, std::vector<int32_t>{1, 2});
  for (auto& s : r.committed) EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(r.result.canvas.size(), 8u);  // stopped after block [4, 8), which holds EOS
  EXPECT_EQ(r.result.output(6).size(), 4u);
  c.first_hitting = false, c.steps = 2;  // MDLM steps inside each block
  r = run(bb, c, std::vector<int32_t>{1, 2});
  EXPECT_EQ(r.result.canvas.size(), 8u);
}

// AR: the next token is (last + 1) % 6, and EOS after token 5.
FakeBackbone::Fn counting() {
  return [](std::span<const int32_t> seq, int row, float* out) {
    std::fill(out, out + 8, 0.0f);
    const int t = seq[size_t(row)];
    out[t == 5 ? 6 : (t + 1) % 6] = 4.0f;
  };
}

ModelConfig causal_config() {
  ModelConfig mc = fake_config(MaskKind::kCausal);
  mc.mask_token = -1;
  return mc;
}

TEST(Ar, GreedyStopsAtEosWithAndWithoutTheCache) {
  SamplerConfig c;
  c.kind = SamplerKind::kAr, c.gen_length = 20;
  FakeBackbone a(causal_config(), counting()), b(causal_config(), counting());
  Recorded r = run(a, c, std::vector<int32_t>{1});
  EXPECT_EQ(r.result.canvas, (std::vector<int32_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(r.result.output(6), (std::vector<int32_t>{2, 3, 4, 5}));
  EXPECT_EQ(a.span_sizes, (std::vector<int>{1, 1, 1, 1, 1}));
  c.kv_cache = false;
  EXPECT_EQ(run(b, c, std::vector<int32_t>{1}).result.canvas, r.result.canvas);
  c.gen_length = 2;
  EXPECT_EQ(run(b, c, std::vector<int32_t>{1}).result.canvas, (std::vector<int32_t>{1, 2, 3}));
}

TEST(Ar, RepeatPenaltyAndForbiddenEos) {
  // logits 4 for the next token, 3 for token 0: a penalty of 2 on a recent next token lets token 0 win.
  FakeBackbone::Fn fn = [](std::span<const int32_t> seq, int row, float* out) {
    std::fill(out, out + 8, 0.0f);
    out[0] = 3.0f, out[(seq[size_t(row)] + 1) % 3 + 1] = 4.0f;
  };
  SamplerConfig c;
  c.kind = SamplerKind::kAr, c.gen_length = 4;
  FakeBackbone bb(causal_config(), fn);
  EXPECT_EQ(run(bb, c, std::vector<int32_t>{1}).result.output(6), (std::vector<int32_t>{3, 2, 1, 3}));
  c.repeat_penalty = 2;
  // after [1, 3, 2] the next token 1 is penalised (2 < 3): 0; after it 2 (penalised, 2) beats 0 (penalised, 1.5)
  EXPECT_EQ(run(bb, c, std::vector<int32_t>{1}).result.output(6), (std::vector<int32_t>{3, 2, 0, 2}));
  FakeBackbone eos(causal_config(), counting());
  c = {};
  c.kind = SamplerKind::kAr, c.gen_length = 6, c.forbid_eos = true;
  EXPECT_EQ(run(eos, c, std::vector<int32_t>{4}).result.output(6).size(), 6u);
}

TEST(Ar, SeededSamplingIsTheSameWhateverTheThreadCount) {
  FakeBackbone::Fn flat = [](std::span<const int32_t>, int, float* out) {
    for (int v = 0; v < 8; ++v) out[v] = 0.1f * float(v);
  };
  SamplerConfig c;
  c.kind = SamplerKind::kAr, c.gen_length = 16, c.temperature = 1, c.seed = 42, c.stop_at_eos = false;
  FakeBackbone bb(causal_config(), flat);
  omp_set_num_threads(1);
  std::vector<int32_t> one = run(bb, c, std::vector<int32_t>{1}).result.canvas;
  omp_set_num_threads(2);
  EXPECT_EQ(run(bb, c, std::vector<int32_t>{1}).result.canvas, one);
  c.seed = 43;
  EXPECT_NE(run(bb, c, std::vector<int32_t>{1}).result.canvas, one);
}

TEST(Infill, PatternTokensAndBothSidesSeen) {
  auto pieces = parse_infill_pattern("The [MASK:3] of the [MASK] world");
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].text, "The ");
  EXPECT_EQ(pieces[0].holes, 3);
  EXPECT_EQ(pieces[1].text, " of the ");
  EXPECT_EQ(pieces[1].holes, 1);
  EXPECT_EQ(pieces[2].text, " world");
  EXPECT_EQ(pieces[2].holes, 0);
  EXPECT_THROW(parse_infill_pattern("a [MASK:0] b"), Error);
  EXPECT_THROW(parse_infill_pattern("a [MASK:x] b"), Error);
  EXPECT_THROW(parse_infill_pattern("a [MASK:3 b"), Error);
  Canvas cv = infill_canvas(parse_infill_tokens("1,M2,3,M"), 7);
  EXPECT_EQ(cv.tokens, (std::vector<int32_t>{1, 7, 7, 3, 7}));
  EXPECT_THROW(infill_canvas(parse_infill_tokens("1,2"), 7), Error);
  EXPECT_THROW(parse_infill_tokens("1,,2"), Error);

  // Each hole proposes the token to its right plus the one to its left (mod 5): it must see both sides.
  FakeBackbone::Fn fn = [](std::span<const int32_t> seq, int row, float* out) {
    std::fill(out, out + 8, 0.0f);
    int l = row > 0 && seq[size_t(row - 1)] != 7 ? seq[size_t(row - 1)] : 0;
    int r = row + 1 < int(seq.size()) && seq[size_t(row + 1)] != 7 ? seq[size_t(row + 1)] : 0;
    out[(l + r) % 5] = 5.0f + float(l + r);
  };
  FakeBackbone bb(fake_config(), fn);
  SamplerConfig c;
  c.kind = SamplerKind::kLlada;
  GenerateResult g = generate_canvas(bb, c, infill_canvas(parse_infill_tokens("1,M,3"), 7));
  EXPECT_EQ(g.canvas, (std::vector<int32_t>{1, 4, 3}));
  EXPECT_EQ(g.commit_step, (std::vector<int32_t>{-1, 0, -1}));
}

TEST(Edge, NoMaskLeftRunsNothing) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  Canvas cv{{1, 2, 3}, 3};
  for (auto k : {SamplerKind::kLlada, SamplerKind::kDream, SamplerKind::kMdlm}) {
    SamplerConfig c;
    c.kind = k;
    GenerateResult r = generate_canvas(bb, c, cv);
    EXPECT_EQ(r.canvas, cv.tokens);
    EXPECT_EQ(r.stats.forward_passes, 0);
  }
}

TEST(Edge, CancellationStopsBetweenSteps) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  GenerateResult r = generate(bb, llada(8, 8), kPrompt, [](const StepEvent& e) { return e.step < 2; });
  EXPECT_TRUE(r.cancelled);
  EXPECT_EQ(r.stats.forward_passes, 3);
  EXPECT_EQ(std::count(r.canvas.begin(), r.canvas.end(), 7), 5);
}

TEST(BadInput, ClearErrors) {
  FakeBackbone bb(fake_config(), by_margin(kMargins));
  auto message = [&](SamplerConfig c, std::vector<int32_t> prompt) -> std::string {
    try {
      generate(bb, c, prompt);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  SamplerConfig c = llada(-1, 0);
  EXPECT_NE(message(c, std::vector<int32_t>(60, 1)).find("context"), std::string::npos);
  c.gen_length = 0;
  EXPECT_NE(message(c, kPrompt).find("generation length 0"), std::string::npos);
  c = llada(0, 0);
  EXPECT_NE(message(c, kPrompt).find("--steps 0"), std::string::npos);
  EXPECT_THROW(parse_sampler_kind("beam"), Error);
  FakeBackbone causal(causal_config(), counting());
  try {
    generate(causal, llada(-1, 0), kPrompt);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no mask token"), std::string::npos) << e.what();
  }
  c = {};
  c.kind = SamplerKind::kBd3;
  EXPECT_NE(message(c, kPrompt).find("block-causal"), std::string::npos);
  c.kind = SamplerKind::kAr;
  EXPECT_NE(message(c, kPrompt).find("causal model"), std::string::npos);
  c = llada(-1, 0);
  c.cache = CacheMode::kPrefix, c.cfg_scale = 1;
  EXPECT_NE(message(c, kPrompt).find("cfg"), std::string::npos);
}

}  // namespace
}  // namespace unmask

namespace unmask {
namespace {

// How many positions the first of two steps reveals, out of 400, with the model's noise schedule.
int first_step_reveals(SamplerKind kind, const char* schedule) {
  ModelConfig mc = fake_config();
  mc.ctx = 512, mc.noise_schedule = schedule;
  FakeBackbone bb(mc, [](std::span<const int32_t>, int row, float* out) {
    std::fill(out, out + 8, 0.0f);
    out[row % 5] = 2.0f;
  });
  SamplerConfig c;
  c.kind = kind, c.gen_length = 400, c.steps = 2, c.seed = 3;
  int first = -1;
  generate(bb, c, kPrompt, [&](const StepEvent& e) {
    if (first < 0) first = int(e.committed.size());
    return true;
  });
  return first;
}

// MDLM reveals a masked position between t = 1 and s with probability (α(s) − α(t)) / (1 − α(t)) of the model's
// schedule (cosine: 0.707 at s ≈ 1/2, linear: 0.5); Dream reveals that fraction of the masks, rounded down.
TEST(Schedule, SamplersRevealByTheModelsSchedule) {
  const double s = 1.0 - (1.0 - 1e-3) / 2;
  for (Schedule k : {Schedule::kLinear, Schedule::kCosine, Schedule::kLogLinear}) {
    const NoiseSchedule ns{k, 1e-3};
    const std::string name(schedule_name(k));
    const double p = ns.reveal(1.0, s), sd = std::sqrt(400 * p * (1 - p));
    EXPECT_NEAR(first_step_reveals(SamplerKind::kMdlm, name.c_str()), 400 * p, 5 * sd) << name;
    const std::vector<float> ts = dream_timesteps(2, 1e-3f);
    EXPECT_EQ(first_step_reveals(SamplerKind::kDream, name.c_str()), dream_transfer_count(400, 0, ts, ns)) << name;
  }
  const NoiseSchedule cosine{Schedule::kCosine, 1e-3};
  EXPECT_NEAR(cosine.reveal(1.0, s), std::cos(std::numbers::pi / 2 * s), 1e-12);
  EXPECT_EQ(dream_transfer_count(400, 0, dream_timesteps(2, 1e-3f), {Schedule::kCosine, 1e-3}), 282);
  EXPECT_EQ(dream_transfer_count(400, 0, dream_timesteps(2, 1e-3f), {}), 199);
}

}  // namespace
}  // namespace unmask
