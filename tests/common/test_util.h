// What the test suites share: running the `unmask` binary (UNMASK_BINARY), the message of an expected error, per-process
// temporary paths, and a checkpoint's tensors.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/io/gguf.h"

namespace unmask::test {

struct Result {
  int code;
  std::string out;  // stdout and stderr together
};

inline Result sh(const std::string& args) {
  std::string cmd = std::string(UNMASK_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// `unmask ARGS` fails with exit code 1 and one line, "unmask: error: ...", that holds `says`.
inline void expect_error_line(const std::string& args, const std::string& says) {
  const Result r = sh(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
  EXPECT_TRUE(r.out.starts_with("unmask: error: ")) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(says), std::string::npos) << args << "\n" << r.out;
}

// Runs `unmask ARGS`, sends `sig` once its output has a line holding `trigger` (a run a few steps in), and collects
// its output to the end. A run that ends before the trigger fails the test.
inline Result sh_with_signal(const std::string& args, int sig, const std::string& trigger) {
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
  Result r{-1, {}};
  bool sent = false;
  for (char line[4096]; std::fgets(line, sizeof line, in);) {
    r.out += line;
    if (!sent && std::string(line).find(trigger) != std::string::npos) sent = kill(pid, sig) == 0;
  }
  std::fclose(in);
  int status = 0;
  waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  EXPECT_TRUE(sent) << "no line with '" << trigger << "' before the run ended:\n" << r.out;
  return r;
}

// The message of the unmask::Error that f() throws, or "" when it throws none.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A path in the temporary directory that no other test process uses: unmask_<suite>_<pid>_<name>.
inline std::string temp_path(const std::string& suite, const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("unmask_" + suite + "_" + std::to_string(getpid()) + "_" + name)).string();
}

// Every tensor of a checkpoint (model and optimizer) by name, and its step.
inline std::vector<std::pair<std::string, std::string>> tensors(const std::filesystem::path& ckpt) {
  gguf::Reader r(ckpt.string());
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& t : r.tensors())
    out.emplace_back(t.name, std::string(static_cast<const char*>(t.data), t.nbytes));
  out.emplace_back("step", std::to_string(r.get_int("unmask.train.step")));
  return out;
}

// Starts `unmask ARGS --out OUT`, kills it with SIGKILL at an arbitrary moment after its first checkpoint, and
// returns the step of the checkpoint left on disk (which must be whole).
inline int64_t kill_after_first_checkpoint(const std::string& args, const std::filesystem::path& out) {
  pid_t pid = fork();
  if (pid == 0) {
    std::string cmd = std::string(UNMASK_BINARY) + " " + args + " --out " + out.string() + " >/dev/null 2>&1";
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), (char*)nullptr);
    _exit(127);
  }
  while (!std::filesystem::exists(out / "checkpoint.gguf"))
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  std::this_thread::sleep_for(std::chrono::milliseconds(Rng(uint64_t(time(nullptr))).below(20)));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  gguf::Reader killed((out / "checkpoint.gguf").string());
  return killed.get_int("unmask.train.step");
}

}  // namespace unmask::test
