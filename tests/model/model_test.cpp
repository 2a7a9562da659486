// The transformer: cached forward equals the full forward, batches equal single sequences, bad input is refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <omp.h>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/io/gguf.h"
#include "unmask/model/model.h"
#include "../common/test_util.h"
#include "model_util.h"

namespace unmask {
namespace {

ModelConfig small_config(std::string_view arch, MaskKind mask, int block = 0) {
  ModelConfig c = preset_config("tiny");
  const ArchInfo& a = arch_info(arch);
  c.arch = std::string(arch), c.rope = a.rope, c.qkv_bias = a.qkv_bias, c.mask = mask, c.block_size = block;
  c.vocab = 203, c.d_model = 48, c.n_heads = 6, c.n_kv_heads = 2, c.head_dim = 8, c.ffn = 100, c.n_layers = 2;
  c.ctx = 96;
  return c;
}

using test::expect_batch_equals_each_alone;
using test::expect_close;
using test::full_logits;
using test::logits_with_threads;
using test::random_tokens;

TEST(KVCache, CausalPrefixThenSpanEqualsFullForward) {
  ModelConfig c = small_config("llama", MaskKind::kCausal);
  Model m = Model::random(c, 7);
  auto tokens = random_tokens(40, c.vocab, 1);
  auto full = full_logits(m, tokens);
  KVCache cache = m.make_cache();
  const int P = 17, V = c.vocab;
  std::vector<float> part(size_t(40 - P) * V);
  m.forward_cached(cache, std::span(tokens).first(P), part.data());
  expect_close(part.data(), full.data(), size_t(P) * V, c, "prefix");
  m.forward_cached(cache, std::span(tokens).subspan(P), part.data());
  expect_close(part.data(), full.data() + size_t(P) * V, size_t(40 - P) * V, c, "span after prefix");
  EXPECT_EQ(cache.size(), 40);
}

TEST(KVCache, CausalTokenByTokenDecodeEqualsFullForward) {
  ModelConfig c = small_config("qwen2", MaskKind::kCausal);
  Model m = Model::random(c, 8);
  auto tokens = random_tokens(25, c.vocab, 2);
  auto full = full_logits(m, tokens);
  KVCache cache = m.make_cache(32);
  std::vector<float> row(size_t(c.vocab));
  for (size_t i = 0; i < tokens.size(); ++i) {
    m.forward_cached(cache, std::span(tokens).subspan(i, 1), row.data());
    expect_close(row.data(), full.data() + i * size_t(c.vocab), row.size(), c, "decode step");
  }
}

TEST(KVCache, BlockCausalAppendFinishedBlocksEqualsFullForward) {
  const int B = 8;
  ModelConfig c = small_config("llada", MaskKind::kBlockCausal, B);
  Model m = Model::random(c, 9);
  auto tokens = random_tokens(37, c.vocab, 3);  // the last block is partial
  auto full = full_logits(m, tokens);
  KVCache cache = m.make_cache();
  std::vector<float> part(size_t(B) * c.vocab);
  for (int start = 0; start < 37; start += B) {
    int n = std::min(B, 37 - start);
    auto block = std::span(tokens).subspan(size_t(start), size_t(n));
    m.forward_cached(cache, block, part.data(), {}, /*commit=*/false);  // a denoising step: not kept
    EXPECT_EQ(cache.size(), start);
    m.forward_cached(cache, block, part.data());
    expect_close(part.data(), full.data() + size_t(start) * c.vocab, size_t(n) * c.vocab, c, "block");
  }
}

TEST(KVCache, TruncateThenRerunEqualsFullForward) {
  ModelConfig c = small_config("llama", MaskKind::kCausal);
  Model m = Model::random(c, 10);
  auto tokens = random_tokens(30, c.vocab, 4);
  auto full = full_logits(m, tokens);
  KVCache cache = m.make_cache();
  std::vector<float> part(size_t(30) * c.vocab);
  auto other = random_tokens(30, c.vocab, 5);
  m.forward_cached(cache, std::span(tokens).first(12), part.data());
  m.forward_cached(cache, other, part.data());  // a wrong continuation, then rolled back
  cache.truncate(12);
  m.forward_cached(cache, std::span(tokens).subspan(12), part.data());
  expect_close(part.data(), full.data() + size_t(12) * c.vocab, size_t(18) * c.vocab, c, "after truncate");
  EXPECT_THROW(cache.truncate(31), Error);
}

TEST(KVCache, WindowRerunAgainstTheWholeCachedSequence) {
  for (MaskKind mask : {MaskKind::kBidirectional, MaskKind::kCausal, MaskKind::kBlockCausal}) {
    ModelConfig c = small_config("llada", mask, 8);
    Model m = Model::random(c, 21);
    auto tokens = random_tokens(40, c.vocab, 13);
    auto full = full_logits(m, tokens);
    KVCache cache = m.make_cache();
    std::vector<float> all(size_t(40) * c.vocab), part(size_t(8) * c.vocab);
    m.forward_cached(cache, tokens, all.data());  // the whole sequence cached
    // The same tokens rerun as a window: exactly the full pass's rows, whatever the mask.
    m.forward_window(cache, 16, std::span(tokens).subspan(16, 8), part.data());
    expect_close(part.data(), full.data() + size_t(16) * c.vocab, part.size(), c, mask_kind_name(mask).data());
    // Changed tokens in the window (a denoising step): exact where nothing cached depends on the window — causal,
    // and block-causal with the window a whole block. Bidirectional suffix K/V go stale: Fast-dLLM's approximation.
    auto changed = tokens;
    for (int i = 16; i < 24; i += 2) changed[size_t(i)] = (changed[size_t(i)] + 7) % c.vocab;
    m.forward_window(cache, 16, std::span(changed).subspan(16, 8), part.data());
    if (mask != MaskKind::kBidirectional) {
      auto want = full_logits(m, changed);
      expect_close(part.data(), want.data() + size_t(16) * c.vocab, part.size(), c, mask_kind_name(mask).data());
    }
    EXPECT_EQ(cache.size(), 40);
    EXPECT_THROW(m.forward_window(cache, 35, std::span(changed).subspan(0, 8), part.data()), Error);
  }
}

TEST(Forward, BidirectionalLogitsDependOnLaterTokensCausalDoNot) {
  for (MaskKind mask : {MaskKind::kCausal, MaskKind::kBidirectional}) {
    ModelConfig c = small_config("llada", mask);
    Model m = Model::random(c, 11);
    auto a = random_tokens(20, c.vocab, 6), b = a;
    b.back() = (b.back() + 1) % c.vocab;
    auto la = full_logits(m, a), lb = full_logits(m, b);
    bool first_row_same = std::equal(la.begin(), la.begin() + c.vocab, lb.begin());
    EXPECT_EQ(first_row_same, mask == MaskKind::kCausal) << mask_kind_name(mask);
  }
}

TEST(Forward, BatchOfSequencesEqualsEachAlone) {
  Model m = Model::random(small_config("dream", MaskKind::kBidirectional), 12);
  expect_batch_equals_each_alone(m);
}

TEST(Forward, SelectedRowsEqualTheFullRows) {
  ModelConfig c = small_config("llada", MaskKind::kBidirectional);
  Model m = Model::random(c, 13);
  auto tokens = random_tokens(21, c.vocab, 10);
  auto full = full_logits(m, tokens);
  Batch b;
  b.add(tokens);
  std::vector<int32_t> rows = {20, 3, 7};
  std::vector<float> part(rows.size() * size_t(c.vocab));
  m.forward(b, part.data(), rows);
  for (size_t r = 0; r < rows.size(); ++r)
    expect_close(part.data() + r * c.vocab, full.data() + size_t(rows[r]) * c.vocab, size_t(c.vocab), c, "row");
}

TEST(Forward, SameLogitsWhateverTheThreadCount) {
  ModelConfig c = small_config("llada", MaskKind::kBidirectional);
  Model m = Model::random(c, 14);
  auto tokens = random_tokens(33, c.vocab, 11);
  auto one = logits_with_threads(m, tokens, 1), two = logits_with_threads(m, tokens, 2);
  expect_close(one.data(), two.data(), one.size(), c, "1 vs 2 threads");
}

// ---- bad input -------------------------------------------------------------------------------------------------

std::string temp_path(const std::string& name) { return test::temp_path("model_test", name); }
using test::error_of;

TEST(BadInput, TokenOutOfRange) {
  ModelConfig c = small_config("llama", MaskKind::kCausal);
  Model m = Model::random(c, 15);
  std::string msg = error_of([&] { full_logits(m, {1, 2, c.vocab}); });
  EXPECT_NE(msg.find("outside the vocabulary"), std::string::npos) << msg;
  EXPECT_NE(msg.find("position 2"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { full_logits(m, {-1}); }), "");
}

TEST(BadInput, SequenceLongerThanContext) {
  ModelConfig c = small_config("llama", MaskKind::kCausal);
  Model m = Model::random(c, 16);
  std::string msg = error_of([&] { full_logits(m, random_tokens(c.ctx + 1, c.vocab, 1)); });
  EXPECT_NE(msg.find("context"), std::string::npos) << msg;
}

TEST(BadInput, WrongShapeTensorNamesTheTensorAndTheExpectedShape) {
  ModelConfig c = small_config("llama", MaskKind::kCausal);
  Model m = Model::random(c, 17);
  gguf::Writer w;
  write_config(c, w);
  std::vector<float> junk(size_t(c.d_model) * 4096, 0.5f);
  for (const auto& [spec, view] : m.weights().tensors()) {
    if (spec.name == "blk.1.attn_k.weight")
      w.add_tensor(spec.name, DType::F32, {c.d_model, c.kv_dim() + 3}, junk.data());
    else
      w.add_tensor(spec.name, view.dtype, spec.ne, view.data);
  }
  std::string path = temp_path("wrong_shape.gguf");
  w.write(path);
  std::string msg = error_of([&] { Model::load(path); });
  EXPECT_NE(msg.find("blk.1.attn_k.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected [48, 16]"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  std::filesystem::remove(path);
}

TEST(BadInput, UnknownArchitectureAndMissingTensor) {
  ModelConfig c = small_config("llama", MaskKind::kCausal);
  Model m = Model::random(c, 18);
  gguf::Writer w;
  m.add_to(w);
  w.set("general.architecture", gguf::Value::str("mamba9"));
  std::string path = temp_path("unknown_arch.gguf");
  w.write(path);
  std::string msg = error_of([&] { Model::load(path); });
  EXPECT_NE(msg.find("unknown architecture 'mamba9'"), std::string::npos) << msg;

  gguf::Writer w2;
  write_config(c, w2);
  for (const auto& [spec, view] : m.weights().tensors())
    if (spec.name != "blk.0.ffn_up.weight") w2.add_tensor(spec.name, view.dtype, spec.ne, view.data);
  w2.write(path);
  msg = error_of([&] { Model::load(path); });
  EXPECT_NE(msg.find("blk.0.ffn_up.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  std::filesystem::remove(path);
}

TEST(BadInput, TruncatedModelFile) {
  ModelConfig c = small_config("llada", MaskKind::kBidirectional);
  std::string path = temp_path("truncated.gguf");
  Model::random(c, 19).save(path);
  auto size = std::filesystem::file_size(path);
  for (auto cut : {size - 1, size / 2, size_t(100), size_t(10)}) {
    std::filesystem::resize_file(path, cut);
    std::string msg = error_of([&] { Model::load(path); });
    EXPECT_NE(msg.find(path), std::string::npos) << "cut at " << cut << ": " << msg;
  }
  std::filesystem::remove(path);
}

TEST(SaveLoad, LoadedModelComputesTheSameLogits) {
  ModelConfig c = small_config("dream", MaskKind::kBidirectional);
  c.wtype = DType::BF16;
  Model m = Model::random(c, 20);
  std::string path = temp_path("roundtrip.gguf");
  m.save(path);
  Model back = Model::load(path);
  EXPECT_EQ(back.config().summary(), m.config().summary());
  auto tokens = random_tokens(19, c.vocab, 12);
  auto a = full_logits(m, tokens), b = full_logits(back, tokens);
  EXPECT_EQ(a, b);
  std::filesystem::remove(path);
}

// A mapped model whose f32 matrices are read in place (no prepacked copies) computes the logits of the prepacked
// one, over many rows (the panel kernel) and over one (the row dots).
TEST(SaveLoad, WeightsReadInPlaceGiveThePrepackedLogits) {
  ModelConfig c = small_config("llama", MaskKind::kCausal);
  std::string path = temp_path("in_place.gguf");
  Model::random(c, 21).save(path);
  Model packed = Model::load(path);
  setenv("UNMASK_PREPACK", "0", 1);
  Model in_place = Model::load(path);
  unsetenv("UNMASK_PREPACK");
  for (int n : {23, 1}) {
    auto tokens = random_tokens(n, c.vocab, 13);
    auto a = full_logits(packed, tokens), b = full_logits(in_place, tokens);
    expect_close(b.data(), a.data(), a.size(), c, "read in place");
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace unmask
