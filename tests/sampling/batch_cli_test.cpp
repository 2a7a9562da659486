// `unmask generate --batch-tokens FILE`: every line of the file is a request of one batch, with the same flags and
// seed; each must give the tokens `unmask generate --prompt-tokens LINE` gives alone. Bad batch files are one clear
// line each.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../common/test_util.h"

namespace unmask {
namespace {

using nlohmann::json;

struct BatchCli : ::testing::Test {
  std::string model = test::temp_path("batch_cli", "llada.gguf");
  std::string file = test::temp_path("batch_cli", "prompts.txt");

  void SetUp() override {
    test::Result r = test::sh("init --config tiny --arch llada --seed 2 --out " + model);
    ASSERT_EQ(r.code, 0) << r.out;
  }
  void TearDown() override {
    std::filesystem::remove(model);
    std::filesystem::remove(file);
  }
  void write(const std::string& text) { std::ofstream(file) << text; }

  // The JSON lines of one run, in request order.
  std::vector<json> run_lines(const std::string& args) {
    test::Result r = test::sh("generate -m " + model + " " + args + " --json");
    EXPECT_EQ(r.code, 0) << args << "\n" << r.out;
    std::vector<json> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line[0] == '{') out.push_back(json::parse(line));
    return out;
  }
};

TEST_F(BatchCli, EachLineGivesItsSoloTokens) {
  const std::vector<std::string> prompts = {"5,17,33,2", "9,1", "40,41,42,43,44,45"};
  write(prompts[0] + "\n" + prompts[1] + "\n\n" + prompts[2] + "\n");  // the blank line is skipped
  const std::string samplers[] = {"--sampler llada --temp 0.8 --block-length 8 -n 16 --seed 3",
                                  "--sampler dream --alg entropy --temp 0.5 --steps 8 -n 16 --seed 4",
                                  "--sampler mdlm --temp 1 --steps 6 -n 12 --seed 5"};
  for (const std::string& flags : samplers) {
    const std::vector<json> batch = run_lines("--batch-tokens " + file + " " + flags);
    ASSERT_EQ(batch.size(), prompts.size()) << flags;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::vector<json> solo = run_lines("--prompt-tokens " + prompts[i] + " " + flags);
      ASSERT_EQ(solo.size(), 1u);
      EXPECT_EQ(batch[i]["request"], i);
      EXPECT_EQ(batch[i]["canvas"], solo[0]["canvas"]) << flags << ", request " << i;
      EXPECT_EQ(batch[i]["commit_step"], solo[0]["commit_step"]) << flags << ", request " << i;
    }
  }
  // Control: another seed changes the sampled tokens, so the equality above is not vacuous.
  const std::vector<json> other = run_lines("--batch-tokens " + file + " " + samplers[0] + "1");
  const std::vector<json> same = run_lines("--batch-tokens " + file + " " + samplers[0]);
  ASSERT_EQ(other.size(), same.size());
  EXPECT_NE(other[0]["canvas"], same[0]["canvas"]);
}

TEST_F(BatchCli, BadBatchFilesAreOneClearLine) {
  const std::pair<std::string, std::string> cases[] = {
      {"", "no prompt in the batch file"},
      {"1,2\n3,M4\n", "prompts.txt:2: 'M4' is not a token id"},
      {"1,x\n", "prompts.txt:1: 'x' is not a token id"},
      {"1,,2\n", "'' is not a token id"},
  };
  for (const auto& [text, want] : cases) {
    write(text);
    test::Result r = test::sh("generate -m " + model + " --batch-tokens " + file + " -n 8");
    EXPECT_EQ(r.code, 1) << text << "\n" << r.out;
    EXPECT_NE(r.out.find(want), std::string::npos) << text << "\n" << r.out;
  }
  write("1,2\n");
  test::Result r = test::sh("generate -m " + model + " --batch-tokens " + file + " --prompt-tokens 1 -n 8");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("do not combine"), std::string::npos) << r.out;
  r = test::sh("generate -m " + model + " --batch-tokens /nonexistent/prompts.txt -n 8");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("cannot open the batch file"), std::string::npos) << r.out;
  r = test::sh("generate -m " + model + " --batch " + file + " -n 8");
  EXPECT_EQ(r.code, 1) << "text prompts need the model's tokenizer";
  EXPECT_NE(r.out.find("carries no tokenizer"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace unmask
