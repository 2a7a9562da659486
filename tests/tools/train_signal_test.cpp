// `unmask train` interrupted by SIGINT or SIGTERM: the step under way finishes, a checkpoint of that step is written
// (even off the --checkpoint-every schedule), the command says how to resume and exits with 128 + the signal; the
// resumed run continues from there. A resume whose --steps is not above the checkpoint's step is refused.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "../common/test_util.h"
#include "unmask/base/rng.h"
#include "unmask/io/gguf.h"

namespace unmask {
namespace {

namespace fs = std::filesystem;
using test::Result;
using test::sh;

// A data directory prepared by `unmask data prepare` from random letters.
fs::path make_data(const std::string& name) {
  const fs::path dir = test::temp_path("train_signal", name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  Rng r(3);
  std::string text(20000, ' ');
  for (char& c : text) c = char('a' + r.below(26));
  std::ofstream(dir / "corpus.txt") << text;
  const Result p = sh("data prepare -f " + (dir / "corpus.txt").string() + " -o " + (dir / "data").string());
  EXPECT_EQ(p.code, 0) << p.out;
  return dir;
}

int64_t checkpoint_step(const fs::path& run) {
  return gguf::Reader((run / "checkpoint.gguf").string()).get_int("unmask.train.step");
}

TEST(TrainSignal, InterruptCheckpointsTheStepReachedAndResumeContinues) {
  for (const int sig : {SIGINT, SIGTERM}) {
    const fs::path dir = make_data("sig" + std::to_string(sig)), run = dir / "run";
    const std::string args = "train --objective ar --data " + (dir / "data").string() +
                             " --config tiny --layers 1 --d-model 32 --heads 2 --ffn 48 --batch 2 --seq-len 16 "
                             "--steps 1000000 --eval-every 3 --eval-batches 1 --checkpoint-every 1000000 -t 1 -o " +
                             run.string();
    const Result r = test::sh_with_signal(args, sig, " val ");
    EXPECT_EQ(r.code, 128 + sig) << r.out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(interrupted after step (\d+) of 1000000)"))) << r.out;
    const int64_t at = std::stoll(m[1].str());
    EXPECT_GE(at, 3) << r.out;
    EXPECT_NE(r.out.find("unmask train --resume " + run.string()), std::string::npos) << r.out;
    ASSERT_TRUE(fs::exists(run / "checkpoint.gguf")) << "nothing saved on the signal:\n" << r.out;
    EXPECT_EQ(checkpoint_step(run), at);

    const std::string more = std::to_string(at + 2);
    Result resumed = sh("train --resume " + run.string() + " --steps " + more + " -t 1");
    ASSERT_EQ(resumed.code, 0) << resumed.out;
    EXPECT_NE(resumed.out.find("resuming at step " + std::to_string(at)), std::string::npos) << resumed.out;
    EXPECT_EQ(checkpoint_step(run), at + 2);
    fs::remove_all(dir);
  }
}

TEST(TrainSignal, ResumeWithoutStepsLeftIsRefusedNamingBothNumbers) {
  const fs::path dir = make_data("below"), run = dir / "run";
  Result r = sh("train --objective ar --data " + (dir / "data").string() + " --config tiny --layers 1 --d-model 32 "
                "--heads 2 --ffn 48 --batch 2 --seq-len 16 --steps 6 --eval-every 100 --eval-batches 1 -t 1 -o " +
                run.string());
  ASSERT_EQ(r.code, 0) << r.out;
  for (const char* steps : {"4", "6"}) {
    r = sh("train --resume " + run.string() + " --steps " + steps);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find(std::string("--steps ") + steps + " is not above the checkpoint's step 6"), std::string::npos)
        << r.out;
  }
  r = sh("train --resume " + run.string());
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("steps are done (checkpoint at step 6); give --steps above 6"), std::string::npos) << r.out;
  EXPECT_EQ(checkpoint_step(run), 6);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace unmask
