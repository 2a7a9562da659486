// `unmask compare` on a tiny budget: the report directory it writes, resuming after an interruption (finished phases
// kept, training continued from its checkpoint), a rerun with other settings refused, checkpoint mode, and the bad
// input the issue names: checkpoints with different tokenizers, a budget too small to train, a held-out text shorter
// than one window.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../tools/tool_models.h"

namespace unmask::test {
namespace {

namespace fs = std::filesystem;

// A prepared corpus (byte tokenizer) in a fresh folder.
fs::path prepared(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("unmask_compare_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string corpus;
  for (int i = 0; i < 30; ++i) corpus += kVerses;
  std::ofstream(dir / "corpus.txt") << corpus;
  const Result r = sh("data prepare --input " + (dir / "corpus.txt").string() + " --tokenizer byte --out " +
                      (dir / "data").string());
  EXPECT_EQ(r.code, 0) << r.out;
  return dir;
}

const std::string kSmall = " --config tiny --seq-len 32 --batch 4 --eval-every 10 --checkpoint-every 5 --tasks "
                           "dependency,infill --task-items 4 --parallel 1,4 --gen-samples 2 --gen-length 8 --temps 1.0 "
                           "--prompt-tokens 4 --elbo-samples 2 --eval-tokens 512 -t 1";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(CompareCli, WritesTheReportAndResumesAfterAnInterruption) {
  const fs::path dir = prepared("resume");
  const std::string cmd = "compare --data " + (dir / "data").string() + " --out " + (dir / "rep").string() +
                          " --steps 40" + kSmall;
  // Interrupted during training: exit 130, the finished phases and a checkpoint kept.
  const Result first = sh_with_signal(cmd, SIGINT, "train-ar");
  EXPECT_EQ(first.code, 130) << first.out;
  EXPECT_TRUE(fs::exists(dir / "rep" / "phases" / "data.json"));
  EXPECT_FALSE(fs::exists(dir / "rep" / "report.md"));
  const Result again = sh(cmd);
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_NE(again.out.find("(finished before)"), std::string::npos) << again.out;
  for (const char* f : {"report.md", "results.json", "loss.svg", "gen_frontier.svg", "speed_dependency.svg",
                        "tasks.svg", "phases/likelihood.json", "ar/checkpoint.gguf", "diffusion/checkpoint.gguf"})
    EXPECT_TRUE(fs::exists(dir / "rep" / f)) << f;
  const std::string md = slurp(dir / "rep" / "report.md");
  for (const char* s : {"## Likelihood", "## Generation quality", "### dependency", "### infill", "## Where each wins"})
    EXPECT_NE(md.find(s), std::string::npos) << s;
  const auto j = nlohmann::json::parse(slurp(dir / "rep" / "results.json"));
  EXPECT_EQ(j["settings"]["train"]["steps"], 40);
  EXPECT_GT(j["phases"]["likelihood"]["ar"]["ppl"].get<double>(), 1.0);
  EXPECT_TRUE(j["command"].get<std::string>().starts_with("unmask compare"));
  // Another budget for the same report is refused, naming the setting.
  const Result other = sh("compare --data " + (dir / "data").string() + " --out " + (dir / "rep").string() +
                          " --steps 41" + kSmall);
  EXPECT_NE(other.code, 0);
  EXPECT_NE(other.out.find("train"), std::string::npos) << other.out;
  // Checkpoint mode on the two trained twins.
  const Result ck = sh("compare --ar " + (dir / "rep/ar/checkpoint.gguf").string() + " --diffusion-model " +
                       (dir / "rep/diffusion/checkpoint.gguf").string() + " --data " + (dir / "data").string() +
                       " --out " + (dir / "ck").string() + kSmall + " --samplers llada,mdlm");
  EXPECT_EQ(ck.code, 0) << ck.out;
  EXPECT_TRUE(fs::exists(dir / "ck" / "report.md"));
  const auto cj = nlohmann::json::parse(slurp(dir / "ck" / "results.json"));
  EXPECT_EQ(cj["phases"]["task-infill"]["diffusion"]["sampler"], "llada");
  EXPECT_EQ(cj["phases"]["task-infill"]["diffusion-mdlm"]["sampler"], "mdlm");
  EXPECT_NE(slurp(dir / "ck" / "report.md").find("| diffusion-mdlm | k=1 |"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "ck" / "phases" / "task-dependency.json"));  // needs the task text in training
  fs::remove_all(dir);
}

TEST(CompareCli, RefusesBadInputClearly) {
  const ToolModels m = tool_models();
  const fs::path dir = prepared("bad");
  const std::string data = " --data " + (dir / "data").string();
  expect_error_line("compare" + data + " --out " + (dir / "a").string() + " --tokens 10" + kSmall,
               "trains nothing");
  // A diffusion model on another tokenizer (a BPE trained on the corpus) than the byte-level AR model.
  ASSERT_EQ(sh("tokenizer train --input " + (dir / "corpus.txt").string() + " --vocab-size 300 --out " +
               (dir / "bpe.gguf").string()).code, 0);
  ASSERT_EQ(sh("data prepare --input " + (dir / "corpus.txt").string() + " --tokenizer " + (dir / "bpe.gguf").string() +
               " --out " + (dir / "bpe").string()).code, 0);
  const Result t = sh("train --objective mdlm --data " + (dir / "bpe").string() + " --config tiny --seq-len 16 --batch 2 "
                      "--steps 1 --out " + (dir / "bpe-mdlm").string());
  ASSERT_EQ(t.code, 0) << t.out;
  expect_error_line("compare --ar " + m.kjv_ar + " --diffusion-model " + (dir / "bpe-mdlm" / "checkpoint.gguf").string() +
               data + " --out " + (dir / "b").string() + kSmall, "different tokenizers");
  std::ofstream(dir / "short.txt") << "In the";
  expect_error_line("compare --ar " + m.kjv_ar + " --diffusion-model " + m.kjv_mdlm + " --text " +
               (dir / "short.txt").string() + " --out " + (dir / "c").string() + kSmall, "shorter than one window");
  expect_error_line("compare" + data + " --out " + (dir / "d").string() + " --elbo-samples 0" + kSmall, "--elbo-samples");
  expect_error_line("compare --ar " + m.kjv_ar + " --out " + (dir / "e").string(), "--diffusion-model");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace unmask::test
