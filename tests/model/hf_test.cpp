// Hugging Face folders: config.json of each architecture read into a ModelConfig, and the errors for missing,
// mistyped, unsupported and inconsistent keys, unknown architectures and missing tensors; `unmask convert` on bad
// input. (Logits of real folders against PyTorch: tests/reference/test_hf.py.)
#include "unmask/model/hf.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "unmask/base/error.h"
#include "unmask/tokenizer/tokenizer.h"
#include "../common/test_util.h"

namespace unmask {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// LLaDA-8B-Instruct's config.json, shrunk.
json llada_config() {
  return json::parse(R"({"architectures": ["LLaDAModelLM"], "d_model": 64, "n_layers": 2, "n_heads": 4,
    "n_kv_heads": 4, "mlp_hidden_size": 96, "vocab_size": 126349, "embedding_size": 126464,
    "max_sequence_length": 4096, "rope_theta": 500000.0, "rms_norm_eps": 1e-05, "include_bias": false,
    "include_qkv_bias": false, "weight_tying": false, "activation_type": "silu", "block_type": "llama",
    "layer_norm_type": "rms", "mask_token_id": 126336, "eos_token_id": 126081})");
}

json qwen2_config() {
  return json::parse(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 8, "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 1000,
    "max_position_embeddings": 2048, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": true,
    "hidden_act": "silu", "bos_token_id": 3, "eos_token_id": [5, 6], "rope_scaling": null})");
}

class HfConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::temp_path("hf", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) const { std::ofstream(fs::path(dir_) / name) << text; }
  // The error of reading config.json = j.
  std::string config_error(const json& j) const {
    write("config.json", j.dump());
    return test::error_of([&] { read_hf_config(dir_); });
  }

  std::string dir_;
};

TEST_F(HfConfigTest, LLaDAKeys) {
  write("config.json", llada_config().dump());
  EXPECT_TRUE(is_hf_folder(dir_));
  const ModelConfig c = read_hf_config(dir_);
  EXPECT_EQ(c.arch, "llada");
  EXPECT_EQ(c.vocab, 126464);  // the padded embedding rows, not the tokenizer's vocab_size
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.ffn, 96);
  EXPECT_EQ(c.ctx, 4096);
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.norm_eps, 1e-5f);
  EXPECT_EQ(c.rope, RopeLayout::kNeox);  // HF's half-split layout
  EXPECT_EQ(c.mask, MaskKind::kBidirectional);
  EXPECT_FALSE(c.tied_output);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.mask_token, 126336);
  EXPECT_EQ(c.eos_token, 126081);
}

TEST_F(HfConfigTest, Qwen2Keys) {
  write("config.json", qwen2_config().dump());
  const ModelConfig c = read_hf_config(dir_);
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_EQ(c.vocab, 1000);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.tied_output);
  EXPECT_EQ(c.mask, MaskKind::kCausal);
  EXPECT_EQ(c.bos_token, 3);
  EXPECT_EQ(c.eos_token, 5);  // the first of a list
}

TEST_F(HfConfigTest, DreamShiftsLogitsAndLlamaTakesHeadDim) {
  json j = qwen2_config();
  j["architectures"] = {"DreamModel"};
  j["mask_token_id"] = 999;
  write("config.json", j.dump());
  ModelConfig c = read_hf_config(dir_);
  EXPECT_EQ(c.arch, "dream");
  EXPECT_TRUE(c.shift_logits);
  EXPECT_EQ(c.mask, MaskKind::kBidirectional);
  EXPECT_EQ(c.mask_token, 999);
  j["architectures"] = {"LlamaForCausalLM"};
  j["head_dim"] = 24;
  write("config.json", j.dump());
  c = read_hf_config(dir_);
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.head_dim, 24);
  EXPECT_FALSE(c.qkv_bias);
}

TEST_F(HfConfigTest, MissingKeyIsNamed) {
  json j = llada_config();
  j.erase("n_layers");
  const std::string e = config_error(j);
  EXPECT_NE(e.find("config.json: key n_layers is missing"), std::string::npos) << e;
}

TEST_F(HfConfigTest, UnknownArchitectureListsTheKnownOnes) {
  json j = qwen2_config();
  j["architectures"] = {"GPT2LMHeadModel"};
  std::string e = config_error(j);
  EXPECT_NE(e.find("unknown architecture 'GPT2LMHeadModel'; known: LLaDAModelLM, DreamModel, LlamaForCausalLM, "
                   "Qwen2ForCausalLM"),
            std::string::npos)
      << e;
  j.erase("architectures");
  e = config_error(j);
  EXPECT_NE(e.find("key architectures is missing"), std::string::npos) << e;
}

TEST_F(HfConfigTest, InconsistentHeadsAreRejected) {
  json j = qwen2_config();
  j["num_key_value_heads"] = 3;
  std::string e = config_error(j);
  EXPECT_NE(e.find("num_attention_heads = 8 is not a multiple of num_key_value_heads = 3"), std::string::npos) << e;
  j = llada_config();
  j["d_model"] = 66;
  e = config_error(j);
  EXPECT_NE(e.find("d_model = 66 is not a multiple of n_heads = 4"), std::string::npos) << e;
}

TEST_F(HfConfigTest, BadValuesAreRejected) {
  const std::pair<std::pair<const char*, json>, const char*> cases[] = {
      {{"d_model", "64"}, "key d_model = \"64\", expected an integer"},
      {{"n_heads", 0}, "key n_heads = 0, expected a positive count"},
      {{"rms_norm_eps", "small"}, "key rms_norm_eps = \"small\", expected a number"},
      {{"weight_tying", 1}, "key weight_tying = 1, expected true or false"},
      {{"include_bias", true}, "key include_bias = true, unmask supports only false"},
      {{"activation_type", "gelu"}, "key activation_type = \"gelu\", unmask supports only \"silu\""},
      {{"mask_token_id", 200000}, "special token id 200000 is outside the vocabulary of 126464"},
  };
  for (const auto& [kv, want] : cases) {
    json j = llada_config();
    j[kv.first] = kv.second;
    const std::string e = config_error(j);
    EXPECT_NE(e.find("config.json: "), std::string::npos) << e;
    EXPECT_NE(e.find(want), std::string::npos) << kv.first << ": " << e;
  }
  json j = qwen2_config();
  j["rope_scaling"] = {{"type", "yarn"}};
  EXPECT_NE(config_error(j).find("key rope_scaling = {\"type\":\"yarn\"}, unmask supports only null"),
            std::string::npos);
  write("config.json", "{\"architectures\": [");
  EXPECT_NE(test::error_of([&] { read_hf_config(dir_); }).find("config.json: not valid JSON"), std::string::npos);
}

TEST_F(HfConfigTest, MissingTensorIsNamedWithItsHfName) {
  write("config.json", qwen2_config().dump());
  std::string header = "{}      ", bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  write("model.safetensors", bytes + header);
  const std::string e = test::error_of([&] { Model::load(dir_); });
  EXPECT_NE(e.find("tensor model.embed_tokens.weight is missing"), std::string::npos) << e;
}

// Real Dream-7B and Qwen2.5 folders have more embedding rows than tokenizer.json has tokens: a folder opened directly
// pads its vocabulary to the rows with unused [PAD<i>] tokens, as `convert` does (one function, hf_vocab), so that a
// sampled padding id decodes (to nothing, as llama.cpp's unused tokens) instead of failing with "outside the
// vocabulary".
TEST_F(HfConfigTest, FolderTokenizerIsPaddedToTheEmbeddingRows) {
  write("config.json", qwen2_config().dump());  // 1000 embedding rows
  write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4,
      "he": 5, "ll": 6, "hell": 7, "hello": 8, "Ġh": 9}, "merges": ["h e", "l l", "he ll", "hell o", "Ġ h"]},
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
      "decoder": {"type": "ByteLevel"},
      "added_tokens": [{"id": 10, "content": "<|endoftext|>", "special": true, "lstrip": false, "rstrip": false}]})");
  for (const auto& tok : {load_tokenizer_file(dir_), load_hf_tokenizer(dir_)}) {
    EXPECT_EQ(tok->n_vocab(), 1000);
    EXPECT_EQ(tok->encode("hello"), (std::vector<int32_t>{8}));
    const std::vector<int32_t> ids = {8, 275, 999};
    EXPECT_EQ(tok->decode(ids), "hello");
    EXPECT_EQ(tok->token_text(275), "[PAD275]");
    EXPECT_EQ(tok->role(TokenRole::kBos), 3);  // from config.json, which the tokenizer files lack
  }
  ModelConfig c = read_hf_config(dir_);
  EXPECT_EQ(hf_vocab(dir_, c).size(), 1000);
  c.vocab = 5;
  EXPECT_NE(test::error_of([&] { hf_vocab(dir_, c); }).find("11 tokens, but the model's embedding has only 5 rows"),
            std::string::npos);
}

TEST(HfConvertCli, BadTypeAndMissingFolder) {
  const std::string out = test::temp_path("hf", "never.gguf");
  test::Result r = test::sh("convert " + test::temp_path("hf", "no_such_dir") + " --out " + out + " --type q7_k");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("unknown quantization type 'q7_k'; known types: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0"),
            std::string::npos)
      << r.out;
  r = test::sh("convert " + test::temp_path("hf", "no_such_dir") + " --out " + out);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no_such_dir: not a Hugging Face checkpoint folder"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out));
  r = test::sh("convert --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("--model is required"), std::string::npos) << r.out;  // the folder: DIR or -m DIR
}

}  // namespace
}  // namespace unmask
