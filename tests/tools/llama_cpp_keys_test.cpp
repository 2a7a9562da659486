// What llama.cpp's loader requires of a file (its src/llama-vocab.cpp and examples/diffusion; docs/huggingface.md):
// every model file unmask writes — init, training checkpoints, export, quantize — names its tokenizer model
// (`none` with <arch>.vocab_size where it has no vocabulary: llama.cpp refuses a file without the key), and a
// diffusion model that does not shift its logits (LLaDA) says so in diffusion.shift_logits (llama.cpp's diffusion
// CLI shifts a file without the key). Such a file still reads in unmask as one without a tokenizer.
#include <gtest/gtest.h>

#include <string>

#include "../common/test_util.h"
#include "tool_models.h"
#include "unmask/io/gguf.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask {
namespace {

std::string tmp(const std::string& name) { return test::temp_path("llama_cpp_keys", name); }

// The keys llama.cpp reads before anything else, for a file with or without a vocabulary.
void expect_loadable_keys(const std::string& path, bool vocabulary) {
  gguf::Reader r(path);
  const std::string arch = r.get_string("general.architecture");
  ASSERT_TRUE(r.has("tokenizer.ggml.model")) << path;
  EXPECT_EQ(r.get_string("tokenizer.ggml.model") == "none", !vocabulary) << path;
  for (const char* k : {"context_length", "embedding_length", "block_count", "attention.layer_norm_rms_epsilon",
                        "vocab_size"})
    EXPECT_TRUE(r.has(arch + "." + k)) << path << " lacks " << arch << "." << k;
  if (arch == "llada") {
    ASSERT_TRUE(r.has("diffusion.shift_logits")) << path;
    EXPECT_EQ(r.find("diffusion.shift_logits")->type, gguf::ValueType::kBool);
    EXPECT_FALSE(r.get_bool("diffusion.shift_logits", true)) << path;
  }
  if (arch == "dream") EXPECT_TRUE(r.get_bool("diffusion.shift_logits", true)) << path;  // absent: shifted
}

TEST(LlamaCppKeys, EveryModelFileNamesItsTokenizerAndLladaItsShift) {
  for (const char* arch : {"llama", "llada", "dream"}) {
    const std::string f = tmp(std::string(arch) + ".gguf"), q = tmp(std::string(arch) + "-q8.gguf");
    ASSERT_EQ(test::sh(std::string("init --config tiny --force --arch ") + arch + " --out " + f).code, 0);
    expect_loadable_keys(f, false);
    EXPECT_EQ(model_tokenizer(f), nullptr) << "none is no tokenizer";
    ASSERT_EQ(test::sh("quantize --force " + f + " " + q + " --type q8_0").code, 0);
    expect_loadable_keys(q, false);
    const test::Result g = test::sh("generate -m " + q + " --prompt-tokens 1,2,3 -n 4");
    EXPECT_EQ(g.code, 0) << g.out;
  }
  const test::ToolModels tm = test::tool_models();  // trained with a byte tokenizer: checkpoints and exports
  for (const std::string& ckpt : {tm.kjv_ar, tm.kjv_mdlm}) {
    expect_loadable_keys(ckpt, true);
    const std::string out = tmp("export.gguf");
    ASSERT_EQ(test::sh("export --force " + ckpt + " " + out).code, 0);
    expect_loadable_keys(out, true);
    EXPECT_NE(model_tokenizer(out), nullptr);
  }
}

// init --tokenizer: the model takes the vocabulary's size, special ids and keys (llama.cpp's clients tokenize with
// them: tests/tools/llama_cpp); a size that disagrees, a file without a vocabulary, or a diffusion model whose
// vocabulary has no [MASK] are refused.
TEST(LlamaCppKeys, InitTakesItsVocabularyFromATokenizer) {
  const std::string f = tmp("init-byte.gguf");
  ASSERT_EQ(test::sh("init --config tiny --force --arch llada --tokenizer byte --out " + f).code, 0);
  expect_loadable_keys(f, true);
  gguf::Reader r(f);
  const auto tok = model_tokenizer(f);
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(r.get_int("llada.vocab_size", 0), int64_t(tok->n_vocab()));
  EXPECT_EQ(r.get_int("tokenizer.ggml.mask_token_id", -1), int64_t(tok->vocab().mask));
  EXPECT_GE(tok->vocab().mask, 0);
  const test::Result g = test::sh("generate -m " + f + " -p hello -n 4 --steps 2");
  EXPECT_EQ(g.code, 0) << g.out;

  test::Result bad = test::sh("init --config tiny --force --tokenizer byte --vocab 300 --out " + tmp("bad.gguf"));
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("--vocab 300: the tokenizer byte holds"), std::string::npos) << bad.out;
  const std::string none = tmp("none.gguf");
  ASSERT_EQ(test::sh("init --config tiny --force --out " + none).code, 0);
  bad = test::sh("init --config tiny --force --tokenizer " + none + " --out " + tmp("bad.gguf"));
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("carries no vocabulary"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace unmask
