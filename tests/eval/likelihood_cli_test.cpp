// `unmask eval ppl` and `unmask eval elbo` on small trained models: the figures they print, a model trained with the
// cosine schedule evaluated and sampled with it, and a clear error for each kind of bad input.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "../tools/tool_models.h"

namespace unmask::test {
namespace {

namespace fs = std::filesystem;

std::string verses_file() {
  const fs::path p = fs::temp_directory_path() / ("unmask_eval_verses_" + std::to_string(getpid()) + ".txt");
  std::ofstream(p) << kVerses;
  return p.string();
}

nlohmann::json json_of(const std::string& args) {
  const Result r = sh(args);
  EXPECT_EQ(r.code, 0) << args << "\n" << r.out;
  return r.code == 0 ? nlohmann::json::parse(r.out.substr(r.out.find('{'))) : nlohmann::json{};
}

TEST(EvalCli, PerplexityOfTheArModel) {
  const ToolModels m = tool_models();
  const std::string text = verses_file();
  const auto j = json_of("eval ppl -m " + m.kjv_ar + " --text " + text + " --json");
  ASSERT_TRUE(j.contains("ppl"));
  EXPECT_EQ(j["method"], "ar");
  EXPECT_EQ(j["token_nll"].size(), j["tokens"].get<size_t>());
  EXPECT_NEAR(j["ppl"].get<double>(), std::exp(j["nll_per_token"].get<double>()), 1e-9);
  // A model trained on these verses predicts them far better than a uniform guess over 256+ byte tokens.
  EXPECT_LT(j["ppl"].get<double>(), 20.0);
  const Result plain = sh("eval ppl -m " + m.kjv_ar + " --text " + text);
  EXPECT_EQ(plain.code, 0);
  EXPECT_NE(plain.out.find("ppl ="), std::string::npos) << plain.out;
  fs::remove(text);
}

TEST(EvalCli, BoundOfTheDiffusionModelWithItsStandardError) {
  const ToolModels m = tool_models();
  const std::string text = verses_file();
  const auto j = json_of("eval elbo -m " + m.kjv_mdlm + " --text " + text + " --samples 16 --seed 4 --json");
  ASSERT_TRUE(j.contains("se"));
  EXPECT_EQ(j["method"], "elbo");
  EXPECT_EQ(j["samples"], 16);
  EXPECT_EQ(j["schedule"], "linear");
  EXPECT_GT(j["se"].get<double>(), 0.0);
  EXPECT_EQ(j["token_nll"].size(), j["tokens"].get<size_t>());
  // The same seed gives the same estimate; another seed another one.
  EXPECT_EQ(json_of("eval elbo -m " + m.kjv_mdlm + " --text " + text + " --samples 16 --seed 4 --json")["nll"], j["nll"]);
  EXPECT_NE(json_of("eval elbo -m " + m.kjv_mdlm + " --text " + text + " --samples 16 --seed 5 --json")["nll"], j["nll"]);
  const auto c = json_of("eval elbo -m " + m.kjv_mdlm + " --prompt \"In the beginning\" --answer \" God created\" "
                         "--mc 32 --json");
  EXPECT_EQ(c["method"], "conditional-elbo");
  EXPECT_GT(c["nll"].get<double>(), 0.0);
  fs::remove(text);
}

TEST(EvalCli, CosineModelIsEvaluatedAndSampledWithItsSchedule) {
  const fs::path dir = fs::temp_directory_path() / ("unmask_eval_cosine_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string corpus;
  for (int i = 0; i < 10; ++i) corpus += kVerses;
  std::ofstream(dir / "corpus.txt") << corpus;
  ASSERT_EQ(sh("data prepare --input " + (dir / "corpus.txt").string() + " --tokenizer byte --out " +
               (dir / "data").string()).code, 0);
  const Result t = sh("train --objective mdlm --schedule cosine --data " + (dir / "data").string() +
                      " --config tiny --seq-len 32 --batch 4 --steps 3 --warmup 1 --eval-every 100 --out " +
                      (dir / "run").string());
  ASSERT_EQ(t.code, 0) << t.out;
  const std::string model = (dir / "run" / "checkpoint.gguf").string();
  const Result info = sh("info " + model);
  EXPECT_NE(info.out.find("unmask.diffusion.schedule"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("\"cosine\""), std::string::npos);
  const auto j = json_of("eval elbo -m " + model + " --tokens 72,101,108,108,111,32,119 --samples 8 --json");
  EXPECT_EQ(j["schedule"], "cosine");
  const Result g = sh("generate -m " + model + " --sampler mdlm -p \"In\" -n 8 --steps 4 --json");
  EXPECT_EQ(g.code, 0) << g.out;
  fs::remove_all(dir);
}

TEST(EvalCli, RefusesBadInputClearly) {
  const ToolModels m = tool_models();
  const std::string text = verses_file();
  expect_error_line("eval ppl -m " + m.kjv_mdlm + " --text " + text, "use `eval elbo`");
  expect_error_line("eval elbo -m " + m.kjv_ar + " --text " + text, "use `eval ppl`");
  expect_error_line("eval elbo -m " + m.kjv_mdlm + " --text " + text + " --samples 0", "--samples");
  expect_error_line("eval ppl -m " + m.kjv_ar + " --text " + text + " --context 60 --stride 60", "--stride 60");
  expect_error_line("eval ppl -m " + m.kjv_ar + " --tokens 1,2 --text " + text, "exactly one of --text");
  expect_error_line("eval ppl -m " + m.kjv_ar, "exactly one of --text");
  expect_error_line("eval ppl -m " + m.kjv_ar + " --tokens 1,2,9999", "outside the vocabulary");
  expect_error_line("eval ppl -m " + m.kjv_ar + " --text /nonexistent/file.txt", "/nonexistent/file.txt");
  std::ofstream(text) << "In the";
  expect_error_line("eval ppl -m " + m.kjv_ar + " --text " + text + " --context 32", "shorter than one window");
  expect_error_line("eval elbo -m " + m.kjv_mdlm + " --prompt \"In the\"", "--answer");
  expect_error_line("eval elbo -m " + m.kjv_mdlm + " --tokens 1,2,3 --exact --samples 4", "--samples");
  expect_error_line("eval elbo -m " + m.kjv_mdlm + " --tokens 1,2,3 --exact --context 2", "--context");
  expect_error_line("eval elbo -m " + m.kjv_mdlm + " --tokens 1,2,3 --context 9999", "context of");
  fs::remove(text);
}

}  // namespace
}  // namespace unmask::test
