// The `unmask` command: bad input gives one line on stderr and exit code 1, never a crash.
#include <gtest/gtest.h>
#include <unistd.h>

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "../common/test_util.h"

namespace {

using unmask::test::Result;
Result run(const std::string& args) { return unmask::test::sh(args); }

std::string tmp(const std::string& name) { return unmask::test::temp_path("cli_test", name); }

int lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

TEST(Cli, InitInfoForward) {
  std::string m = tmp("m.gguf"), l = tmp("l.f32");
  ASSERT_EQ(run("init --config tiny --arch llada --out " + m).code, 0);
  Result info = run("info " + m);
  EXPECT_EQ(info.code, 0) << info.out;
  EXPECT_NE(info.out.find("bidirectional"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("blk.1.ffn_down.weight"), std::string::npos) << info.out;
  Result fwd = run("forward -m " + m + " --tokens 1,2,3,4 --out " + l);
  EXPECT_EQ(fwd.code, 0) << fwd.out;
  EXPECT_EQ(std::filesystem::file_size(l), 4u * 512u * 4u);
  std::filesystem::remove(m), std::filesystem::remove(l);
}

TEST(Cli, BadInputIsOneLineAndExitCodeOne) {
  std::string m = tmp("bad.gguf");
  ASSERT_EQ(run("init --config tiny --out " + m).code, 0);
  Result r = run("forward -m " + m + " --tokens 1,2,99999 --out " + tmp("x.f32"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find("99999"), std::string::npos) << r.out;

  std::filesystem::resize_file(m, 1000);
  r = run("info " + m);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(lines(r.out), 1) << r.out;
  EXPECT_NE(r.out.find(m), std::string::npos) << r.out;

  r = run("init --config huge --out " + m);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("unknown config 'huge'"), std::string::npos) << r.out;
  r = run("init --arch gpt9 --out " + m);
  EXPECT_NE(r.out.find("unknown architecture 'gpt9'"), std::string::npos) << r.out;
  r = run("forward -m /nonexistent.gguf --tokens 1 --out " + tmp("x.f32"));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("/nonexistent.gguf"), std::string::npos) << r.out;
  std::filesystem::remove(m);
}

}  // namespace
