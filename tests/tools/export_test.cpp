// `unmask export` and `unmask quantize` on a training checkpoint: the model alone, the optimizer state dropped with a
// line saying so, the same logits as the checkpoint, an existing output refused without --force.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "../common/test_util.h"
#include "tool_models.h"
#include "unmask/io/gguf.h"

namespace {

using unmask::test::Result;
using unmask::test::sh;

std::string tmp(const std::string& name) { return unmask::test::temp_path("export_test", name); }

bool has_optimizer_state(const std::string& path) {
  unmask::gguf::Reader r(path);
  for (const auto& t : r.tensors())
    if (t.name.starts_with("optim.")) return true;
  return false;
}

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Export, RunDirectoryGivesTheModelAloneWithTheSameLogits) {
  const std::string ckpt = unmask::test::tool_models().kjv_ar;
  const std::string run = std::filesystem::path(ckpt).parent_path().string(), out = tmp("m.gguf");
  ASSERT_TRUE(has_optimizer_state(ckpt));
  Result r = sh("export " + run + " " + out + " --set unmask.note=hello");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("optimizer state"), std::string::npos) << r.out;
  EXPECT_FALSE(has_optimizer_state(out));
  EXPECT_EQ(unmask::gguf::Reader(out).get_string("unmask.note"), "hello");
  EXPECT_TRUE(unmask::gguf::Reader(out).has("tokenizer.ggml.model"));
  // The same weights: the same logits from the checkpoint and from the exported file.
  ASSERT_EQ(sh("forward -m " + ckpt + " --tokens 1,2,3 --out " + tmp("a.f32")).code, 0);
  ASSERT_EQ(sh("forward -m " + out + " --tokens 1,2,3 --out " + tmp("b.f32")).code, 0);
  EXPECT_EQ(file_bytes(tmp("a.f32")), file_bytes(tmp("b.f32")));

  r = sh("export " + run + " " + out);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("--force"), std::string::npos) << r.out;
  r = sh("export " + run + " " + out + " --force --type bf16");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(unmask::gguf::Reader(out).find_tensor("blk.0.attn_q.weight")->type, unmask::DType::BF16);
  for (const char* f : {"m.gguf", "a.f32", "b.f32"}) std::filesystem::remove(tmp(f));
}

TEST(Export, QuantizeTakesACheckpointAndSaysWhatItDrops) {
  const std::string ckpt = unmask::test::tool_models().kjv_mdlm, out = tmp("q.gguf");
  Result r = sh("quantize " + ckpt + " " + out + " --type q8_0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("optim.adam_m"), std::string::npos) << r.out;
  EXPECT_FALSE(has_optimizer_state(out));
  EXPECT_EQ(sh("generate -m " + out + " --prompt-tokens 1,2 -n 4 --steps 4").code, 0);
  std::filesystem::remove(out);
}

TEST(Export, NotAModelIsOneLine) {
  const std::string dir = tmp("empty_dir");
  std::filesystem::create_directories(dir);
  Result r = sh("export " + dir + " " + tmp("x.gguf"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("checkpoint.gguf"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.rfind("unmask: error: ", 0), 0u) << r.out;
  std::filesystem::remove(dir);
}

}  // namespace
