// Quantization schemes: the type llama.cpp's rules give each tensor, and a file written with them reads back with
// exactly the converted bytes.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <map>

#include "unmask/io/gguf.h"
#include "unmask/kernels/quant.h"
#include "unmask/model/quantize.h"
#include "../common/test_util.h"

namespace unmask {
namespace {

// 8 layers: use_more_bits picks layers 0, 3, 6 and 7 (first and last eighth, every third between).
ModelConfig config8() {
  ModelConfig c = preset_config("tiny");
  c.vocab = 300, c.d_model = 256, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 64, c.ffn = 512, c.n_layers = 8;
  return c;
}

std::map<std::string, DType> types_of(QuantScheme s, const ModelConfig& c) {
  std::map<std::string, DType> out;
  for (const auto& spec : tensor_specs(c)) out[spec.name] = quant_type_for(s, spec, c);
  return out;
}

TEST(QuantScheme, Q4KMFollowsLlamaCpp) {
  const ModelConfig c = config8();
  auto t = types_of(QuantScheme::kQ4_K_M, c);
  EXPECT_EQ(t["token_embd.weight"], DType::Q4_K);
  EXPECT_EQ(t["output.weight"], DType::Q6_K);
  EXPECT_EQ(t["output_norm.weight"], DType::F32);
  for (int l = 0; l < c.n_layers; ++l) {
    const bool more = l == 0 || l == 3 || l == 6 || l == 7;
    const std::string b = "blk." + std::to_string(l) + ".";
    EXPECT_EQ(t[b + "attn_v.weight"], more ? DType::Q6_K : DType::Q4_K) << "layer " << l;
    EXPECT_EQ(t[b + "ffn_down.weight"], more ? DType::Q6_K : DType::Q4_K) << "layer " << l;
    for (const char* n : {"attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight"})
      EXPECT_EQ(t[b + n], DType::Q4_K) << b << n;
    EXPECT_EQ(t[b + "attn_norm.weight"], DType::F32);
  }
}

TEST(QuantScheme, OutputAndTiedEmbedding) {
  ModelConfig c = config8();
  EXPECT_EQ(types_of(QuantScheme::kQ8_0, c)["output.weight"], DType::Q8_0);  // q8_0 keeps q8_0
  EXPECT_EQ(types_of(QuantScheme::kQ4_0, c)["output.weight"], DType::Q6_K);
  EXPECT_EQ(types_of(QuantScheme::kQ4_0, c)["token_embd.weight"], DType::Q4_0);
  EXPECT_EQ(types_of(QuantScheme::kQ4_0, c)["blk.0.attn_v.weight"], DType::Q4_0);  // no layer rules for q4_0
  c.tied_output = true;  // the embedding is the output projection: it gets the output's type
  EXPECT_EQ(types_of(QuantScheme::kQ4_K_M, c)["token_embd.weight"], DType::Q6_K);
  EXPECT_EQ(types_of(QuantScheme::kF16, c)["token_embd.weight"], DType::F16);
  EXPECT_EQ(types_of(QuantScheme::kBF16, c)["blk.0.attn_norm.weight"], DType::F32);
}

TEST(QuantScheme, RowsThatAreNotWholeBlocksFallBack) {
  ModelConfig c = config8();
  c.d_model = 96, c.n_heads = 3, c.head_dim = 32, c.n_kv_heads = 1, c.ffn = 176;
  auto t = types_of(QuantScheme::kQ4_K_M, c);
  EXPECT_EQ(t["blk.1.attn_q.weight"], DType::Q5_0);      // Q4_K on rows of 96 -> Q5_0
  EXPECT_EQ(t["blk.0.attn_v.weight"], DType::Q8_0);      // Q6_K (use_more_bits) -> Q8_0
  EXPECT_EQ(t["output.weight"], DType::Q8_0);            // Q6_K -> Q8_0
  EXPECT_EQ(t["blk.0.ffn_down.weight"], DType::F16);     // rows of 176: not whole blocks of 32 either
  EXPECT_EQ(types_of(QuantScheme::kQ4_0, c)["blk.0.ffn_down.weight"], DType::F16);
  // llama.cpp's tensor_type_fallback for the other K types.
  EXPECT_EQ(types_of(QuantScheme::kQ2_K, c)["blk.1.attn_q.weight"], DType::Q4_0);
  EXPECT_EQ(types_of(QuantScheme::kQ3_K_S, c)["blk.1.attn_q.weight"], DType::Q4_0);
  EXPECT_EQ(types_of(QuantScheme::kQ5_K_S, c)["blk.1.attn_q.weight"], DType::Q5_1);
  EXPECT_EQ(types_of(QuantScheme::kQ6_K, c)["blk.1.attn_q.weight"], DType::Q8_0);
  EXPECT_EQ(types_of(QuantScheme::kQ5_1, c)["blk.1.attn_q.weight"], DType::Q5_1);  // 32-value types fit 96
}

// What the fallback says: the tensor, the row length, the wanted type and the one it gets.
TEST(QuantScheme, AFallbackSaysSo) {
  ModelConfig c = config8();
  c.d_model = 96, c.n_heads = 3, c.head_dim = 32, c.n_kv_heads = 1, c.ffn = 176;
  const TensorSpec q{"blk.1.attn_q.weight", {96, 96}, DType::F32};
  const QuantChoice choice = quant_choice(QuantScheme::kQ5_K_M, q, c);
  EXPECT_EQ(choice.wanted, DType::Q5_K);
  EXPECT_EQ(choice.type, DType::Q5_1);
  EXPECT_EQ(fallback_note(q, choice),
            "blk.1.attn_q.weight: rows of 96 values are not whole blocks of 256 for q5_k; q5_1 instead, as llama.cpp "
            "does");
  EXPECT_FALSE(quant_choice(QuantScheme::kQ5_K_M, {"blk.1.attn_q.weight", {256, 256}, DType::F32}, c).fell_back());
  // add_quantized_tensors returns one note per tensor that fell back, and none for whole blocks.
  gguf::Writer out;
  std::vector<std::vector<uint8_t>> store;
  const auto notes = add_quantized_tensors(out, ModelWeights::random(c, 3), c, QuantScheme::kQ3_K_M, store);
  size_t want = 0;
  for (const auto& spec : tensor_specs(c)) want += quant_choice(QuantScheme::kQ3_K_M, spec, c).fell_back();
  EXPECT_EQ(notes.size(), want);
  EXPECT_GT(want, size_t(0));
  const ModelConfig whole = config8();
  gguf::Writer out2;
  EXPECT_TRUE(add_quantized_tensors(out2, ModelWeights::random(whole, 3), whole, QuantScheme::kQ3_K_M, store).empty());
}

// llama.cpp's llama_tensor_get_type for each K mix on 8 layers (use_more_bits: layers 0, 3, 6, 7; n/8 = 1, n/16 = 0),
// n_gqa = 2, no experts. Per scheme: token_embd, output, attn_q/k, attn_v by layer, attn_output, ffn_gate/up,
// ffn_down by layer.
TEST(QuantScheme, EachKMixFollowsLlamaCpp) {
  const ModelConfig c = config8();
  using D = DType;
  auto more = [](int l) { return l == 0 || l == 3 || l == 6 || l == 7; };
  struct Want {
    QuantScheme s;
    D base, output;
    std::function<D(int)> attn_v, ffn_down;
    D attn_output;
  };
  const Want wants[] = {
      {QuantScheme::kQ2_K, D::Q2_K, D::Q6_K, [](int) { return D::Q3_K; }, [](int) { return D::Q3_K; }, D::Q3_K},
      {QuantScheme::kQ3_K_S, D::Q3_K, D::Q6_K, [](int) { return D::Q3_K; }, [](int) { return D::Q3_K; }, D::Q3_K},
      {QuantScheme::kQ3_K_M, D::Q3_K, D::Q6_K, [](int l) { return l < 2 ? D::Q5_K : D::Q4_K; },
       [](int) { return D::Q4_K; }, D::Q4_K},
      {QuantScheme::kQ3_K_L, D::Q3_K, D::Q6_K, [](int) { return D::Q5_K; }, [](int) { return D::Q5_K; }, D::Q5_K},
      {QuantScheme::kQ4_K_S, D::Q4_K, D::Q6_K, [](int l) { return l < 4 ? D::Q5_K : D::Q4_K; },
       [](int l) { return l < 1 ? D::Q5_K : D::Q4_K; }, D::Q4_K},
      {QuantScheme::kQ4_K_M, D::Q4_K, D::Q6_K, [&](int l) { return more(l) ? D::Q6_K : D::Q4_K; },
       [&](int l) { return more(l) ? D::Q6_K : D::Q4_K; }, D::Q4_K},
      {QuantScheme::kQ5_K_S, D::Q5_K, D::Q6_K, [](int) { return D::Q5_K; }, [](int) { return D::Q5_K; }, D::Q5_K},
      {QuantScheme::kQ5_K_M, D::Q5_K, D::Q6_K, [&](int l) { return more(l) ? D::Q6_K : D::Q5_K; },
       [&](int l) { return more(l) ? D::Q6_K : D::Q5_K; }, D::Q5_K},
      {QuantScheme::kQ6_K, D::Q6_K, D::Q6_K, [](int) { return D::Q6_K; }, [](int) { return D::Q6_K; }, D::Q6_K},
      {QuantScheme::kQ4_1, D::Q4_1, D::Q6_K, [](int) { return D::Q4_1; }, [](int) { return D::Q4_1; }, D::Q4_1},
      {QuantScheme::kQ5_0, D::Q5_0, D::Q6_K, [](int) { return D::Q5_0; }, [](int) { return D::Q5_0; }, D::Q5_0},
      {QuantScheme::kQ5_1, D::Q5_1, D::Q6_K, [](int) { return D::Q5_1; }, [](int) { return D::Q5_1; }, D::Q5_1},
  };
  for (const Want& w : wants) {
    SCOPED_TRACE(std::string(quant_scheme_name(w.s)));
    auto t = types_of(w.s, c);
    EXPECT_EQ(t["token_embd.weight"], w.base);
    EXPECT_EQ(t["output.weight"], w.output);
    EXPECT_EQ(t["output_norm.weight"], D::F32);
    for (int l = 0; l < c.n_layers; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      EXPECT_EQ(t[b + "attn_v.weight"], w.attn_v(l)) << "layer " << l;
      EXPECT_EQ(t[b + "ffn_down.weight"], w.ffn_down(l)) << "layer " << l;
      EXPECT_EQ(t[b + "attn_output.weight"], w.attn_output) << "layer " << l;
      for (const char* n : {"attn_q.weight", "attn_k.weight", "ffn_gate.weight", "ffn_up.weight"})
        EXPECT_EQ(t[b + n], w.base) << b << n;
    }
  }
  // Q2_K's attn_v is Q4_K where 4 or more query heads share a KV head (n_gqa >= 4).
  ModelConfig gqa4 = c;
  gqa4.n_kv_heads = 1;
  EXPECT_EQ(types_of(QuantScheme::kQ2_K, gqa4)["blk.5.attn_v.weight"], D::Q4_K);
  // Q3_K_M's ffn_down is Q5_K in the first sixteenth of the layers (layer 0 of 16).
  ModelConfig deep = c;
  deep.n_layers = 16;
  EXPECT_EQ(types_of(QuantScheme::kQ3_K_M, deep)["blk.0.ffn_down.weight"], D::Q5_K);
  EXPECT_EQ(types_of(QuantScheme::kQ3_K_M, deep)["blk.1.ffn_down.weight"], D::Q4_K);
}

TEST(QuantScheme, RouterAndExpertsOfAMoEModel) {
  ModelConfig c = config8();
  c.n_experts = 8;
  EXPECT_EQ(quant_type_for(QuantScheme::kQ4_K_M, {"blk.2.ffn_gate_inp.weight", {256, 8}, DType::F32}, c),
            DType::F32);
  // 8 experts: attn_output takes Q5_K in the lower mixes, attn_k and attn_v Q8_0.
  EXPECT_EQ(quant_type_for(QuantScheme::kQ4_K_M, {"blk.2.attn_output.weight", {256, 256}, DType::F32}, c),
            DType::Q5_K);
  EXPECT_EQ(quant_type_for(QuantScheme::kQ2_K, {"blk.2.attn_output.weight", {256, 256}, DType::F32}, c),
            DType::Q5_K);
  EXPECT_EQ(quant_type_for(QuantScheme::kQ5_K_M, {"blk.2.attn_output.weight", {256, 256}, DType::F32}, c),
            DType::Q5_K);
  EXPECT_EQ(quant_type_for(QuantScheme::kQ3_K_L, {"blk.2.attn_k.weight", {256, 128}, DType::F32}, c), DType::Q8_0);
  EXPECT_EQ(quant_type_for(QuantScheme::kQ4_K_M, {"blk.3.ffn_down_exps.weight", {512, 256, 8}, DType::F32}, c),
            DType::Q6_K);
  EXPECT_EQ(quant_type_for(QuantScheme::kQ4_K_M, {"blk.2.ffn_down_exps.weight", {512, 256, 8}, DType::F32}, c),
            DType::Q4_K);
  EXPECT_EQ(quant_type_for(QuantScheme::kQ4_K_M, {"blk.2.attn_v.weight", {256, 128}, DType::F32}, c), DType::Q8_0);
}

TEST(QuantScheme, NamesAndFileTypes) {
  EXPECT_EQ(parse_quant_scheme("Q4_K_M"), QuantScheme::kQ4_K_M);
  EXPECT_EQ(quant_scheme_name(QuantScheme::kQ8_0), "q8_0");
  EXPECT_EQ(quant_file_type(QuantScheme::kF32), 0);
  EXPECT_EQ(quant_file_type(QuantScheme::kF16), 1);
  EXPECT_EQ(quant_file_type(QuantScheme::kQ4_0), 2);
  EXPECT_EQ(quant_file_type(QuantScheme::kQ8_0), 7);
  EXPECT_EQ(quant_file_type(QuantScheme::kQ4_K_M), 15);
  // LLAMA_FTYPE_MOSTLY_* of llama.h.
  const std::pair<const char*, int> ftypes[] = {{"q4_1", 3},    {"q5_0", 8},    {"q5_1", 9},    {"q2_k", 10},
                                                {"q3_k_s", 11}, {"q3_k_m", 12}, {"q3_k_l", 13}, {"q4_k_s", 14},
                                                {"q5_k_s", 16}, {"Q5_K_M", 17}, {"q6_k", 18}};
  for (const auto& [name, ftype] : ftypes) EXPECT_EQ(quant_file_type(parse_quant_scheme(name)), ftype) << name;
  EXPECT_EQ(quant_file_type(QuantScheme::kBF16), 32);
  std::string msg = test::error_of([] { parse_quant_scheme("q5_k"); });
  EXPECT_NE(msg.find("q5_k"), std::string::npos) << msg;
  EXPECT_NE(msg.find("q4_k_m"), std::string::npos) << msg;
}

// Every tensor written by add_quantized_tensors reads back with the scheme's type and exactly the bytes that
// quantizing (or converting) its rows gives.
TEST(QuantScheme, RoundTripThroughGguf) {
  const ModelConfig c = config8();
  const ModelWeights w = ModelWeights::random(c, 7);
  const std::string path = test::temp_path("quantize", "q4km.gguf");
  {
    gguf::Writer out;
    write_config(c, out);
    std::vector<std::vector<uint8_t>> store;
    add_quantized_tensors(out, w, c, QuantScheme::kQ4_K_M, store);
    out.write(path);
  }
  gguf::Reader r(path);
  EXPECT_EQ(r.get_int("general.file_type"), 15);
  ASSERT_EQ(r.tensors().size(), w.tensors().size());
  for (const auto& [spec, view] : w.tensors()) {
    const gguf::TensorInfo& t = r.tensor(spec.name, spec.ne);
    const DType want = quant_type_for(QuantScheme::kQ4_K_M, spec, c);
    ASSERT_EQ(t.type, want) << spec.name;
    const int64_t n = spec.ne[0];
    std::vector<uint8_t> row(row_bytes(want, n));
    for (int64_t r0 : {int64_t(0), view.rows() - 1}) {
      const float* x = view.f32() + r0 * n;
      if (is_quant_dtype(want)) quantize_row(want, x, row.data(), n);
      else from_f32(want, x, row.data(), n);
      EXPECT_EQ(std::memcmp(row.data(), static_cast<const uint8_t*>(t.data) + size_t(r0) * row.size(), row.size()), 0)
          << spec.name << " row " << r0;
    }
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace unmask
