// unmask demo, piped: the prompt, the diffusion text, the AR text and the figures, labelled, no escape codes, the
// texts made of the training corpus's characters; the default models found through UNMASK_MODELS; bad input as one
// line with exit code 1.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>

#include "tool_models.h"

namespace unmask {
namespace {

const std::string kPrompt = "And God said";

// The text of a section: after its header line, up to the line that starts with `figures`.
std::string section(const std::string& out, const std::string& header, const std::string& figures) {
  const size_t h = out.find(header);
  if (h == std::string::npos) return "";
  const size_t begin = out.find('\n', h) + 1, end = out.find("\n" + figures, begin);
  return end == std::string::npos ? "" : out.substr(begin, end - begin);
}

// The generated part of a section's text: it must start with the prompt and add something made of the corpus's bytes.
void expect_text_of_corpus(const std::string& text, const std::string& what, const std::string& out) {
  ASSERT_TRUE(text.starts_with(kPrompt)) << what << "\n" << out;
  const std::string generated = text.substr(kPrompt.size());
  EXPECT_FALSE(generated.empty()) << what << "\n" << out;
  const std::set<char> corpus(test::kVerses.begin(), test::kVerses.end());
  for (char c : generated) EXPECT_TRUE(corpus.count(c)) << what << ": byte " << int(uint8_t(c)) << "\n" << out;
}

void expect_plain_demo(const test::Result& r) {
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "escape codes in piped output:\n" << r.out;
  EXPECT_NE(r.out.find("prompt: " + kPrompt + "\n"), std::string::npos) << r.out;
  expect_text_of_corpus(section(r.out, "--- diffusion: ", "diffusion figures: "), "diffusion", r.out);
  expect_text_of_corpus(section(r.out, "--- autoregressive: ", "autoregressive figures: "), "autoregressive", r.out);
  for (const char* label : {"diffusion figures: 24 tokens, ", "autoregressive figures: 24 tokens, "}) {
    const size_t at = r.out.find(label);
    ASSERT_NE(at, std::string::npos) << label << "\n" << r.out;
    const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
    for (const char* figure : {"forward passes", "tokens/forward", "tokens/s"})
      EXPECT_NE(line.find(figure), std::string::npos) << figure << " in: " << line;
  }
}

TEST(Demo, PipedItPrintsBothTextsAndTheirFiguresAsPlainText) {
  const test::ToolModels tm = test::tool_models();
  expect_plain_demo(test::sh("demo --diffusion-model " + tm.kjv_mdlm + " --ar-model " + tm.kjv_ar + " -p '" +
                             kPrompt + "' -n 24 --steps 12 --temp 0 -s 1 | cat"));
}

TEST(Demo, TheDefaultModelsAreFoundThroughUnmaskModels) {
  namespace fs = std::filesystem;
  const test::ToolModels tm = test::tool_models();
  const fs::path dir = test::temp_path("demo_cli", "models");
  fs::create_directories(dir);
  fs::copy_file(tm.kjv_mdlm, dir / "kjv-mdlm.gguf", fs::copy_options::overwrite_existing);
  fs::copy_file(tm.kjv_ar, dir / "kjv-ar.gguf", fs::copy_options::overwrite_existing);
  setenv("UNMASK_MODELS", dir.c_str(), 1);
  const test::Result r = test::sh("demo -n 24 --temp 0");
  unsetenv("UNMASK_MODELS");
  expect_plain_demo(r);
  EXPECT_NE(r.out.find((dir / "kjv-mdlm.gguf").string()), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(Demo, BadInputIsOneLineAndExitCodeOne) {
  const test::ToolModels tm = test::tool_models();
  const std::string plain = test::temp_path("demo_cli", "no_tokenizer.gguf");
  ASSERT_EQ(test::sh("init --config tiny --arch llada --out " + plain).code, 0);
  const std::string pair = " --diffusion-model " + tm.kjv_mdlm + " --ar-model " + tm.kjv_ar;
  const std::pair<std::string, std::string> cases[] = {
      {"demo --diffusion-model /nonexistent/m.gguf --ar-model " + tm.kjv_ar, "/nonexistent/m.gguf: no such model"},
      {"demo --ar-model /nonexistent/a.gguf --diffusion-model " + tm.kjv_mdlm, "/nonexistent/a.gguf: no such model"},
      {"demo --diffusion-model " + plain + " --ar-model " + tm.kjv_ar, "carries no tokenizer"},
      {"demo" + pair + " -p '" + std::string(3000, 'a') + "'", "tokens; the model's context is"},
      {"demo --diffusion-model " + tm.kjv_ar + " --ar-model " + tm.kjv_ar, "is causal"},
      {"demo --diffusion-model " + tm.kjv_mdlm + " --ar-model " + tm.kjv_mdlm, "--sampler ar needs a causal model"},
      {"demo" + pair + " --sampler mdlm --block-length 4", "--block-length does not apply to --sampler mdlm"},
      {"demo" + pair + " --threshold 0", "--threshold 0: expected a value in (0, 1]"},
      {"demo" + pair + " -n 0", "-n 0"},
  };
  for (const auto& [args, want] : cases) test::expect_error_line(args, want);
  std::filesystem::remove(plain);
}

TEST(Demo, HelpShowsTheFlagsAndAnExample) {
  const test::Result r = test::sh("demo --help");
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* flag : {"--prompt", "--file", "--diffusion-model", "--ar-model", "--sampler", "--n-predict",
                           "--steps", "--block-length", "--threshold", "--temp", "--seed", "--threads", "Example"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << "\n" << r.out;
}

}  // namespace
}  // namespace unmask
