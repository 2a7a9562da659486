// `unmask quantize`: metadata (tokenizer included) carried over, general.file_type set, the tensors in the scheme's
// types, a quantized input requantized, and a bad --type refused in one line before anything is written.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "unmask/io/gguf.h"
#include "unmask/model/model.h"
#include "unmask/model/quantize.h"
#include "../common/test_util.h"

namespace unmask {
namespace {

std::string tmp(const std::string& name) { return test::temp_path("quantize_cli", name); }

ModelConfig config() {
  ModelConfig c = preset_config("tiny");
  c.vocab = 300, c.d_model = 256, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 64, c.ffn = 512, c.n_layers = 2;
  return c;
}

// A random model with a (toy) tokenizer and a key quantize knows nothing about.
void write_input(const std::string& path) {
  const ModelConfig c = config();
  Model m = Model::random(c, 3);
  gguf::Writer w;
  m.add_to(w);
  std::vector<std::string> tokens;
  for (int i = 0; i < c.vocab; ++i) tokens.push_back(fmt::format("t{}", i));
  w.set("tokenizer.ggml.model", gguf::Value::str("gpt2"));
  w.set("tokenizer.ggml.tokens", gguf::Value::strings(tokens));
  w.set("test.custom", gguf::Value::str("kept"));
  w.write(path);
}

TEST(QuantizeCli, KeepsMetadataAndWritesTheSchemeTypes) {
  const std::string in = tmp("in.gguf"), out = tmp("q4km.gguf"), again = tmp("q8.gguf");
  write_input(in);
  test::Result r = test::sh("quantize " + in + " " + out + " --type q4_k_m -t 2");
  ASSERT_EQ(r.code, 0) << r.out;
  gguf::Reader a(in), b(out);
  for (const auto& [key, value] : a.metadata()) EXPECT_TRUE(b.has(key)) << key;
  EXPECT_EQ(b.get_strings("tokenizer.ggml.tokens"), a.get_strings("tokenizer.ggml.tokens"));
  EXPECT_EQ(b.get_string("test.custom"), "kept");
  EXPECT_EQ(b.get_int("general.file_type"), 15);
  const ModelConfig c = read_config(b);
  for (const auto& spec : tensor_specs(c))
    EXPECT_EQ(b.find_tensor(spec.name)->type, quant_type_for(QuantScheme::kQ4_K_M, spec, c)) << spec.name;
  EXPECT_LT(std::filesystem::file_size(out), std::filesystem::file_size(in) / 4);

  r = test::sh("quantize " + out + " " + again + " --type Q8_0");  // a quantized input is dequantized first
  ASSERT_EQ(r.code, 0) << r.out;
  gguf::Reader q8(again);
  EXPECT_EQ(q8.get_int("general.file_type"), 7);
  EXPECT_EQ(q8.find_tensor("blk.0.attn_q.weight")->type, DType::Q8_0);
  Model m = Model::load(again);
  Batch batch;
  batch.add(std::vector<int32_t>{1, 2, 3});
  std::vector<float> logits(3 * size_t(c.vocab));
  m.forward(batch, logits.data());
  EXPECT_TRUE(std::all_of(logits.begin(), logits.end(), [](float v) { return std::isfinite(v); }));
  for (const auto& p : {in, out, again}) std::filesystem::remove(p);
}

// Rows of 96 (d_model) are not whole blocks of 256: q5_k_s falls back to q5_1 for them, one line per tensor.
TEST(QuantizeCli, AFallbackIsSaidOnOneLinePerTensor) {
  const std::string in = tmp("narrow.gguf"), out = tmp("narrow_q5ks.gguf");
  ModelConfig c = config();
  c.d_model = 96, c.n_heads = 3, c.n_kv_heads = 1, c.head_dim = 32, c.ffn = 256;
  {
    gguf::Writer w;
    const Model m = Model::random(c, 3);  // the writer reads its tensors at write()
    m.add_to(w);
    w.write(in);
  }
  test::Result r = test::sh("quantize " + in + " " + out + " --type q5_k_s");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("blk.0.attn_q.weight: rows of 96 values are not whole blocks of 256 for q5_k; q5_1 instead"),
            std::string::npos)
      << r.out;
  size_t lines = 0;
  for (size_t at = r.out.find("not whole blocks"); at != std::string::npos; at = r.out.find("not whole blocks", at + 1))
    ++lines;
  gguf::Reader b(out);
  size_t fell = 0;
  for (const auto& spec : tensor_specs(c)) {
    EXPECT_EQ(b.find_tensor(spec.name)->type, quant_type_for(QuantScheme::kQ5_K_S, spec, c)) << spec.name;
    fell += quant_choice(QuantScheme::kQ5_K_S, spec, c).fell_back();
  }
  EXPECT_EQ(lines, fell);
  EXPECT_EQ(b.find_tensor("blk.0.ffn_down.weight")->type, DType::Q5_K);  // rows of 256 (ffn) keep q5_k
  for (const auto& p : {in, out}) std::filesystem::remove(p);
}

TEST(QuantizeCli, BadTypeIsOneLineAndWritesNothing) {
  const std::string in = tmp("bad_in.gguf"), out = tmp("bad_out.gguf");
  write_input(in);
  test::Result r = test::sh("quantize " + in + " " + out + " --type q5_k");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find("q5_k"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("q4_k_m"), std::string::npos) << r.out;  // the known names are listed
  EXPECT_FALSE(std::filesystem::exists(out));
  r = test::sh("quantize /nonexistent.gguf " + out + " --type q8_0");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("/nonexistent.gguf"), std::string::npos) << r.out;
  std::filesystem::remove(in);
}

}  // namespace
}  // namespace unmask
