// The samplers on a real (tiny, random) transformer: exact caches change nothing, approximate caches drift by a
// measured amount, seeded output does not depend on the thread count; and `unmask generate` rejects bad input
// with one line.
#include <gtest/gtest.h>

#include <omp.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "unmask/model/model.h"
#include "unmask/sampling/drift.h"
#include "unmask/sampling/sampler.h"
#include "../common/test_util.h"

namespace unmask {
namespace {

ModelConfig tiny(std::string_view arch, int block = 0) {
  ModelConfig c = preset_config("tiny");
  const ArchInfo& a = arch_info(arch);
  c.arch = std::string(arch), c.mask = a.mask, c.rope = a.rope, c.qkv_bias = a.qkv_bias;
  c.shift_logits = a.shift_logits;
  if (block > 0) c.mask = MaskKind::kBlockCausal, c.block_size = block;
  if (c.mask != MaskKind::kCausal) c.mask_token = c.vocab - 1;
  c.eos_token = 2;
  return c;
}

const std::vector<int32_t> kPrompt{11, 25, 7, 301, 42};

TEST(ModelSampling, ArKvCacheGivesTheSameTokensAsFullPasses) {
  Model m = Model::random(tiny("llama"), 1);
  ModelBackbone a(m), b(m);
  SamplerConfig c;
  c.kind = SamplerKind::kAr, c.gen_length = 24, c.stop_at_eos = false;
  GenerateResult cached = generate(a, c, kPrompt);
  c.kv_cache = false;
  GenerateResult full = generate(b, c, kPrompt);
  EXPECT_EQ(cached.canvas, full.canvas);
  EXPECT_EQ(cached.stats.positions_run, 5 + 23);
  EXPECT_GT(full.stats.positions_run, 10 * cached.stats.positions_run);
}

TEST(ModelSampling, BlockDiffusionExactCacheGivesTheSameTokens) {
  Model m = Model::random(tiny("llada", 4), 2);
  for (bool first_hitting : {false, true}) {
    ModelBackbone a(m), b(m);
    SamplerConfig c;
    c.kind = SamplerKind::kBd3, c.gen_length = 18, c.stop_at_eos = false, c.first_hitting = first_hitting;
    c.steps = 2, c.seed = 9;
    GenerateResult cached = generate(a, c, kPrompt);
    c.kv_cache = false;
    GenerateResult full = generate(b, c, kPrompt);
    EXPECT_EQ(cached.canvas, full.canvas) << "first hitting " << first_hitting;
    EXPECT_LT(cached.stats.positions_run, full.stats.positions_run);
  }
}

DriftStats cache_drift(const ModelConfig& mc, CacheMode cache, std::span<const int32_t> prompt) {
  Model m = Model::random(mc, 3);
  ModelBackbone inner(m), exact(m);
  DriftProbe probe(inner, exact);
  SamplerConfig c;
  c.kind = SamplerKind::kLlada, c.gen_length = 16, c.block_length = 8, c.steps = 8, c.cache = cache;
  generate(probe, c, prompt);
  return probe.stats();
}

TEST(ModelSampling, ApproximateCacheDriftIsMeasuredAndVanishesForBlockCausalModels) {
  for (CacheMode cache : {CacheMode::kPrefix, CacheMode::kDual}) {
    const char* name = cache == CacheMode::kPrefix ? "prefix" : "dual";
    DriftStats d = cache_drift(tiny("llada"), cache, kPrompt);
    EXPECT_GT(d.compared_calls, 0) << name;
    EXPECT_GT(d.max_abs, 1e-6) << "a bidirectional model's " << name << " cache is approximate";
    EXPECT_TRUE(std::isfinite(d.max_abs));
    std::printf("bidirectional %s cache drift: max |dlogit| %.3g, mean %.3g, argmax changed %lld of %lld rows\n",
                name, d.max_abs, d.mean_max_abs, (long long)d.argmax_changed, (long long)d.rows);
    // Block-causal with blocks aligned to the model's: a block sees only final earlier blocks and itself, never the
    // cached later ones, so both caches are exact.
    std::vector<int32_t> aligned(8, 5);
    DriftStats e = cache_drift(tiny("llada", 8), cache, aligned);
    EXPECT_GT(e.compared_calls, 0) << name;
    EXPECT_LT(e.max_abs, 1e-4) << name;
    EXPECT_EQ(e.argmax_changed, 0) << name;
  }
}

TEST(ModelSampling, SeededSamplingIsTheSameWhateverTheThreadCount) {
  Model m = Model::random(tiny("llada"), 4);
  SamplerConfig c;
  c.kind = SamplerKind::kLlada, c.gen_length = 16, c.steps = 8, c.temperature = 1, c.seed = 123;
  std::vector<std::vector<int32_t>> outs;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    ModelBackbone bb(m);
    outs.push_back(generate(bb, c, kPrompt).canvas);
  }
  EXPECT_EQ(outs[0], outs[1]);
  c.kind = SamplerKind::kDream, c.alg = DreamAlg::kMaskgitPlus;
  ModelBackbone bb(m);
  std::vector<int32_t> d = generate(bb, c, kPrompt).canvas;
  omp_set_num_threads(1);
  EXPECT_EQ(generate(bb, c, kPrompt).canvas, d);
  omp_set_num_threads(2);
}

test::Result run(const std::string& args) { return test::sh(args); }

TEST(GenerateCli, BadInputIsOneClearLine) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  const std::string llada = dir + "/unmask_gen_llada.gguf", llama = dir + "/unmask_gen_llama.gguf";
  ASSERT_EQ(run("init --config tiny --arch llada --ctx 32 --out " + llada).code, 0);
  ASSERT_EQ(run("init --config tiny --arch llama --out " + llama).code, 0);
  const std::string g = "generate -m " + llada + " --prompt-tokens 1,2,3 ";
  const std::pair<std::string, std::string> cases[] = {
      {g + "-n 40", "context"},
      {g + "-n 0", "generation length 0"},
      {g + "-n 8 --steps 0", "--steps 0"},
      {g + "-n 8 --sampler beam", "unknown sampler 'beam'"},
      {"generate -m " + llama + " --prompt-tokens 1,2 -n 8 --sampler llada", "this llama model is causal"},
      {"generate -m " + llada + " -p hello -n 4", "--prompt-tokens"},
      {g + "-n 8 --block-length 3", "does not divide"},
  };
  for (const auto& [args, want] : cases) {
    test::Result r = run(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(want), std::string::npos) << args << "\n" << r.out;
  }
  test::Result ok = run(g + "-n 8 --steps 4 --json");
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_NE(ok.out.find("\"commit_step\""), std::string::npos) << ok.out;
  test::Result infill = run("generate -m " + llada + " --infill-tokens 1,M3,4 --json");
  EXPECT_EQ(infill.code, 0) << infill.out;
  std::filesystem::remove(llada), std::filesystem::remove(llama);
}

}  // namespace
}  // namespace unmask
