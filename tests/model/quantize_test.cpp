// Quantization schemes: the type llama.cpp's rules give each tensor, and a file written with them reads back with
// exactly the converted bytes.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
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
  EXPECT_EQ(t["blk.1.attn_q.weight"], DType::Q8_0);      // Q4_K on rows of 96 -> Q8_0 (llama.cpp: Q5_0)
  EXPECT_EQ(t["output.weight"], DType::Q8_0);            // Q6_K -> Q8_0
  EXPECT_EQ(t["blk.0.ffn_down.weight"], DType::F16);     // rows of 176: not whole blocks of 32 either
  EXPECT_EQ(types_of(QuantScheme::kQ4_0, c)["blk.0.ffn_down.weight"], DType::F16);
}

TEST(QuantScheme, RouterAndExpertsOfAMoEModel) {
  ModelConfig c = config8();
  c.n_experts = 8;
  EXPECT_EQ(quant_type_for(QuantScheme::kQ4_K_M, {"blk.2.ffn_gate_inp.weight", {256, 8}, DType::F32}, c),
            DType::F32);
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
