// llada-moe: the routing rules, then the model: batches, thread counts, the KV cache, only the chosen experts read,
// save/load, and the errors (training, inconsistent expert counts).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "unmask/base/error.h"
#include "unmask/io/gguf.h"
#include "unmask/model/model.h"
#include "unmask/model/moe.h"
#include "unmask/model/quantize.h"
#include "../common/test_util.h"
#include "model_util.h"

namespace unmask {
namespace {

using test::error_of;
using test::expect_batch_equals_each_alone;
using test::expect_close;
using test::full_logits;
using test::logits_with_threads;
using test::random_tokens;

ModelConfig moe_config(MaskKind mask = MaskKind::kBidirectional) {
  ModelConfig c = preset_config("tiny");
  const ArchInfo& a = arch_info("llada-moe");
  c.arch = "llada-moe", c.rope = a.rope, c.qk_norm = a.qk_norm, c.mask = mask;
  c.vocab = 203, c.d_model = 48, c.n_heads = 6, c.n_kv_heads = 2, c.head_dim = 8, c.n_layers = 2, c.ctx = 96;
  c.n_experts = 8, c.n_experts_used = 2, c.expert_ffn = 40, c.ffn = 80;
  return c;
}

// ---- routing ---------------------------------------------------------------------------------------------------

TEST(Routing, TopKPicksTheMostProbableFirstAndTiesGoToTheLowerIndex) {
  const std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f,  // a tie for first place
                                     1.0f, 1.0f, 1.0f, 1.0f,   // all equal
                                     -3.0f, 0.0f, 4.0f, 1.0f};
  const int N = 3, E = 4, K = 2;
  std::vector<int32_t> sel(N * K);
  std::vector<float> w(N * K);
  route_top_k(sel.data(), w.data(), logits.data(), N, E, K, false);
  EXPECT_EQ(sel, (std::vector<int32_t>{1, 2, 0, 1, 2, 3}));
  for (int i = 0; i < N; ++i) {
    double z = 0;
    for (int e = 0; e < E; ++e) z += std::exp(double(logits[size_t(i * E + e)]));
    for (int j = 0; j < K; ++j) {
      double p = std::exp(double(logits[size_t(i * E + sel[size_t(i * K + j)])])) / z;
      // f32 softmax over E terms: a few eps relative
      EXPECT_NEAR(w[size_t(i * K + j)], p, 8 * E * std::numeric_limits<float>::epsilon() * p) << i << " " << j;
    }
  }
  route_top_k(sel.data(), w.data(), logits.data(), N, E, K, true);
  for (int i = 0; i < N; ++i)
    EXPECT_NEAR(w[size_t(i * K)] + w[size_t(i * K + 1)], 1.0f, 4 * std::numeric_limits<float>::epsilon());
  EXPECT_FLOAT_EQ(w[2], 0.5f);  // the all-equal row, renormalised
}

TEST(Routing, GroupByExpertListsEachRowOnceInRowOrder) {
  const std::vector<int32_t> sel = {1, 2, 0, 1, 2, 1};  // rows 0, 1, 2 with K = 2
  ExpertRows g;
  group_by_expert(g, sel.data(), 3, 4, 2);
  EXPECT_EQ(g.begin, (std::vector<int32_t>{0, 1, 4, 6, 6}));
  EXPECT_EQ(g.entry, (std::vector<int32_t>{2, 0, 3, 5, 1, 4}));  // entries row * K + slot
}

// ---- the model -------------------------------------------------------------------------------------------------

TEST(Moe, BatchOfSequencesEqualsEachAlone) {
  Model m = Model::random(moe_config(), 31);
  expect_batch_equals_each_alone(m);
}

TEST(Moe, SameLogitsWhateverTheThreadCount) {
  ModelConfig c = moe_config();
  Model m = Model::random(c, 32);
  auto tokens = random_tokens(45, c.vocab, 11);
  auto one = logits_with_threads(m, tokens, 1), two = logits_with_threads(m, tokens, 2);
  EXPECT_EQ(one, two);
}

TEST(Moe, CausalKVCachedDecodeEqualsFullForward) {
  ModelConfig c = moe_config(MaskKind::kCausal);  // {arch}.attention.causal = true
  Model m = Model::random(c, 33);
  auto tokens = random_tokens(30, c.vocab, 12);
  auto full = full_logits(m, tokens);
  KVCache cache = m.make_cache();
  const int P = 11, V = c.vocab;
  std::vector<float> part(size_t(P) * V);
  m.forward_cached(cache, std::span(tokens).first(P), part.data());
  expect_close(part.data(), full.data(), part.size(), c, "prefix");
  std::vector<float> row(static_cast<size_t>(V));
  for (size_t i = P; i < tokens.size(); ++i) {
    m.forward_cached(cache, std::span(tokens).subspan(i, 1), row.data());
    expect_close(row.data(), full.data() + i * size_t(V), row.size(), c, "decode step");
  }
}

TEST(Moe, BidirectionalWindowRerunEqualsFullForward) {
  ModelConfig c = moe_config();
  Model m = Model::random(c, 34);
  auto tokens = random_tokens(40, c.vocab, 13);
  auto full = full_logits(m, tokens);
  KVCache cache = m.make_cache();
  std::vector<float> all(size_t(40) * c.vocab), part(size_t(8) * c.vocab);
  m.forward_cached(cache, tokens, all.data());
  expect_close(all.data(), full.data(), all.size(), c, "cached pass");
  m.forward_window(cache, 16, std::span(tokens).subspan(16, 8), part.data());
  expect_close(part.data(), full.data() + size_t(16) * c.vocab, part.size(), c, "window");
}

// Router weights all zero: every logit 0, so every row picks experts 0 .. K-1 (ties to the lower index). The other
// experts' weights set to NaN must then never be read, in decode and in a batch; NaN in a chosen expert must show.
TEST(Moe, OnlyTheChosenExpertsAreRead) {
  ModelConfig c = moe_config();
  auto make = [&](int first_poisoned) {  // experts first_poisoned .. E-1 are NaN
    ModelWeights w = ModelWeights::random(c, 35);
    for (const auto& [spec, view] : w.tensors()) {
      auto* data = static_cast<float*>(const_cast<void*>(view.data));
      if (spec.name.ends_with("ffn_gate_inp.weight")) std::fill_n(data, view.nelements(), 0.0f);
      const int64_t per_expert = view.nelements() / c.n_experts;
      if (spec.name.find("_exps.") != std::string::npos)
        std::fill(data + first_poisoned * per_expert, data + view.nelements(), std::nanf(""));
    }
    return Model::from_weights(c, std::move(w));
  };
  Model clean = make(c.n_experts), poisoned = make(c.n_experts_used), chosen_poisoned = make(c.n_experts_used - 1);
  auto tokens = random_tokens(17, c.vocab, 14);
  auto want = full_logits(clean, tokens), got = full_logits(poisoned, tokens);
  EXPECT_EQ(got, want);
  auto finite = [](const std::vector<float>& v) {
    return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
  };
  EXPECT_TRUE(finite(full_logits(poisoned, {tokens[0]})));
  EXPECT_FALSE(finite(full_logits(chosen_poisoned, {tokens[0]})));  // the check can fail
}

TEST(Moe, SavedAndLoadedModelKeepsItsExpertsAndLogits) {
  for (DType t : {DType::F32, DType::BF16}) {
    ModelConfig c = moe_config();
    c.wtype = t, c.expert_norm = true, c.n_experts_used = 3;
    Model m = Model::random(c, 36);
    std::string path = test::temp_path("moe_test", "roundtrip.gguf");
    m.save(path);
    Model back = Model::load(path);
    EXPECT_EQ(back.config().summary(), m.config().summary());
    EXPECT_TRUE(back.config().qk_norm && back.config().expert_norm);
    EXPECT_EQ(back.config().n_params(), m.config().n_params());
    auto tokens = random_tokens(21, c.vocab, 15);
    EXPECT_EQ(full_logits(back, tokens), full_logits(m, tokens)) << dtype_name(t);
    std::filesystem::remove(path);
  }
}

// Quantized experts run in place, each expert's Linear over its slice of the quantized 3-D tensor: the same logits
// as the model with those weights dequantized to f32 (rows and widths whole 256-blocks, so q4_k_m's K-quants
// apply). Every token uses every expert here, so that each expert's GEMM has all 24 rows: the quantized GEMMs
// (quant_gemm) run on int8 activations, whose rounding (half of 1/127 of a
// group's max per value) moves the logits by a few percent of their scale here (measured 1.6-3%); the bound is 10%
// of it, while a wrong slice moves them by their own size.
TEST(Moe, QuantizedExpertSlicesEqualTheirDequantizedWeights) {
  ModelConfig c = moe_config();
  c.d_model = 256, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 64, c.ffn = 512;
  c.n_experts = 4, c.n_experts_used = 4, c.expert_ffn = 256;
  const ModelWeights w = ModelWeights::random(c, 38, 0.05f);
  auto tokens = random_tokens(24, c.vocab, 17);
  for (QuantScheme s : {QuantScheme::kQ8_0, QuantScheme::kQ4_K_M}) {
    SCOPED_TRACE(std::string(quant_scheme_name(s)));
    gguf::Writer out;
    write_config(c, out);
    std::vector<std::vector<uint8_t>> store;
    add_quantized_tensors(out, w, c, s, store);
    const std::string path = test::temp_path("moe_test", std::string(quant_scheme_name(s)) + ".gguf");
    out.write(path);
    Model q = Model::load(path);
    for (const auto& [spec, view] : q.weights().tensors()) {
      if (spec.name.ends_with("_exps.weight")) {
        EXPECT_NE(view.dtype, DType::F32) << spec.name;
      }
    }
    Model deq = Model::from_weights(c, q.weights().to_owned_f32(c));
    auto got = full_logits(q, tokens), want = full_logits(deq, tokens);
    double scale = 0, err = 0;
    for (size_t i = 0; i < want.size(); ++i)
      scale = std::max(scale, double(std::abs(want[i]))), err = std::max(err, double(std::abs(got[i] - want[i])));
    EXPECT_LE(err, 0.1 * scale);
    std::filesystem::remove(path);
  }
}

// ---- errors ----------------------------------------------------------------------------------------------------

TEST(Moe, TrainingIsRefusedWithAClearMessage) {
  ModelConfig c = moe_config();
  Model m = Model::random(c, 37);
  TrainBatch tb;
  tb.add(random_tokens(8, c.vocab, 16), c.mask);
  std::vector<float> logits(size_t(8) * c.vocab), grads(16);
  const std::string want = "training llada-moe models is not supported";
  for (auto msg : {error_of([&] { m.forward_train(tb, logits.data()); }),
                   error_of([&] { m.backward(tb, logits.data(), grads.data()); }), error_of([&] { m.params(); }),
                   error_of([&] { m.to_trainable(); }), error_of([&] { m.train_in_bf16(); })})
    EXPECT_NE(msg.find(want), std::string::npos) << msg;
}

TEST(Moe, InconsistentExpertCountsAreRefused) {
  ModelConfig c = moe_config();
  c.n_experts_used = 9;
  EXPECT_NE(error_of([&] { c.validate(); }).find("n_experts_used = 9, expected 1 to n_experts = 8"), std::string::npos);
  c = moe_config(), c.n_experts = 0;
  EXPECT_NE(error_of([&] { c.validate(); }).find("llada-moe is a mixture of experts"), std::string::npos);
  c = moe_config(), c.expert_ffn = 0;
  EXPECT_NE(error_of([&] { c.validate(); }).find("expert_ffn = 0"), std::string::npos);
  c = preset_config("tiny"), c.n_experts = 4;
  EXPECT_NE(error_of([&] { c.validate(); }).find("architecture llama has no experts"), std::string::npos);

  std::string path = test::temp_path("moe_test", "init.gguf");
  auto r = test::sh("init --arch llada-moe --out " + path);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("n_experts = 0, expected > 0"), std::string::npos) << r.out;
  r = test::sh("init --arch llada-moe --experts 8 --experts-used 2 --expert-ffn 64 --out " + path);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("experts 8 (top 2, width 64)"), std::string::npos) << r.out;
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace unmask
