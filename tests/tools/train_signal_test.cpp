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

struct Interrupted {
  int exit_code = -1;
  std::string out;  // stdout and stderr
};

// Runs `unmask ARGS`, sends `sig` once the run has printed its first validation line (a few steps in), and collects
// its output to the end.
Interrupted interrupt_after_first_validation(const std::string& args, int sig) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1), dup2(fds[1], 2), close(fds[0]), close(fds[1]);
    execl("/bin/sh", "sh", "-c", ("exec " + std::string(UNMASK_BINARY) + " " + args).c_str(), (char*)nullptr);
    _exit(127);
  }
  close(fds[1]);
  FILE* in = fdopen(fds[0], "r");
  Interrupted r;
  bool sent = false;
  for (char line[4096]; std::fgets(line, sizeof line, in);) {
    r.out += line;
    if (!sent && std::string(line).find(" val ") != std::string::npos) sent = kill(pid, sig) == 0;
  }
  std::fclose(in);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  EXPECT_TRUE(sent) << "no validation line before the run ended:\n" << r.out;
  return r;
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
    const Interrupted r = interrupt_after_first_validation(args, sig);
    EXPECT_EQ(r.exit_code, 128 + sig) << r.out;
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
