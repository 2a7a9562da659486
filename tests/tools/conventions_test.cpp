// One command line for every subcommand: every command-line error is one line "unmask: error: ..." with exit code 1,
// --help works everywhere, --version names the commit, token lists are read in the form `unmask tokenize` prints,
// and no command replaces an existing file without --force.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "../common/test_util.h"

namespace {

namespace fs = std::filesystem;
using unmask::test::Result;
using unmask::test::sh;

std::string tmp(const std::string& name) { return unmask::test::temp_path("conventions", name); }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string in_quotes(const std::string& s) { return fmt::format("\"{}\"", s); }

// Exit code 1 and exactly one line, "unmask: error: ..." holding `want`.
void expect_error(const std::string& args, const std::string& want) {
  const Result r = sh(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
  EXPECT_TRUE(r.out.starts_with("unmask: error: ")) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(want), std::string::npos) << args << "\n" << r.out << "(expected '" << want << "')";
  EXPECT_LT(r.out.size(), 300u) << args << "\n" << r.out;
}

// The subcommands `unmask --help` lists (the lines after "Subcommands:").
std::vector<std::string> subcommands() {
  std::istringstream in(sh("--help").out);
  std::vector<std::string> out;
  bool listing = false;
  for (std::string line; std::getline(in, line);) {
    if (listing && line.starts_with("  ")) out.push_back(line.substr(2, line.find(' ', 2) - 2));
    listing |= line.starts_with("Subcommands:");
  }
  return out;
}

TEST(Conventions, EveryClassOfCommandLineErrorIsOneLineAndExitOne) {
  expect_error("", "a command is required");
  expect_error("data", "data: a command is required");
  expect_error("nosuchcommand", "nosuchcommand");
  expect_error("info --no-such-flag x.gguf", "--no-such-flag");
  expect_error("forward --tokens 1,2 --out " + tmp("x.f32"), "--model is required");
  expect_error("train --steps abc --data d --out r", "'abc' is not a number");
  expect_error("train --steps -1 --data d --out r", "--steps: -1 is not a positive number");
  expect_error("train --steps 0 --data d --out r", "--steps: 0 is not a positive number");
  expect_error("forward -m m.gguf --tokens 1 --out x -t -2", "--threads: -2 is not 0 or more");
  expect_error("tokenizer train --byte-level --vocab-size 5 --out " + tmp("t.gguf"), "--vocab-size: 5 is not in [260,");
  expect_error("init --seed -2 --out " + tmp("s.gguf"), "--seed: -2 is not a seed");
  expect_error("init --lr 1 --out " + tmp("s.gguf"), "--lr");
}

TEST(Conventions, HelpOnEveryCommandAndVersionNamesTheCommit) {
  const std::vector<std::string> cmds = subcommands();
  ASSERT_GE(cmds.size(), 10u) << sh("--help").out;
  for (const std::string& cmd : cmds) {
    const Result r = sh(cmd + " --help");
    EXPECT_EQ(r.code, 0) << cmd << "\n" << r.out;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << cmd << "\n" << r.out;
  }
  const Result t = sh("tokenizer train --help");
  EXPECT_NE(t.out.find("--force"), std::string::npos) << t.out;
  const Result v = sh("--version");
  EXPECT_EQ(v.code, 0) << v.out;
  EXPECT_TRUE(std::regex_search(v.out, std::regex(R"(^unmask \d+\.\d+\.\d+ \(commit ([0-9a-f]{7,}|unknown))")))
      << v.out;
}

TEST(Conventions, TokenListsInTheFormTokenizePrints) {
  const std::string tok = tmp("bytes.gguf"), model = tmp("m.gguf");
  ASSERT_EQ(sh("tokenizer train --byte-level --out " + tok).code, 0);
  ASSERT_EQ(sh("init --config tiny --vocab 300 --out " + model).code, 0);
  Result printed = sh("tokenize -m " + tok + " -p hello");
  ASSERT_EQ(printed.code, 0) << printed.out;
  printed.out.pop_back();  // the newline
  ASSERT_NE(printed.out.find(' '), std::string::npos) << printed.out;
  std::string comma = printed.out;
  std::replace(comma.begin(), comma.end(), ' ', ',');
  const std::string spaced = std::regex_replace(comma, std::regex(","), ", ");
  std::vector<std::string> outputs;
  for (const std::string& form :
       {comma, in_quotes(printed.out), in_quotes("[" + comma + "]"), in_quotes("[" + spaced + "]")}) {
    const std::string out = tmp(fmt::format("l{}.f32", outputs.size()));
    const Result r = sh("forward -m " + model + " --tokens " + form + " --out " + out);
    ASSERT_EQ(r.code, 0) << form << "\n" << r.out;
    outputs.push_back(read_bytes(out));
    EXPECT_EQ(outputs.back(), outputs.front()) << "--tokens " << form << " gave other logits than " << comma;
    fs::remove(out);
  }
  EXPECT_EQ(outputs.size(), 4u);
  EXPECT_EQ(outputs.front().size(), 5u * 300u * 4u);
  const Result text = sh("detokenize -m " + tok + " --tokens " + in_quotes("[" + spaced + "]"));
  EXPECT_EQ(text.out, "hello\n");
  expect_error("forward -m " + model + " --tokens \"\" --out " + tmp("e.f32"), "--tokens: no token ids given");
  expect_error("forward -m " + model + " --tokens \"[]\" --out " + tmp("e.f32"), "--tokens: no token ids given");
  expect_error("forward -m " + model + " --tokens 1,x --out " + tmp("e.f32"), "'x' is not a token id");
  expect_error("forward -m " + model + " --tokens " + printed.out + " --out " + tmp("e.f32"), "not expected");
  expect_error("detokenize -m " + tok + " --tokens 1,999", "token id 999 is outside the vocabulary");
  fs::remove(tok), fs::remove(model);
}

TEST(Conventions, AnExistingOutputIsRefusedUnlessForce) {
  const std::string model = tmp("keep.gguf"), tok = tmp("keep_tok.gguf"), logits = tmp("keep.f32");
  const std::string corpus = tmp("corpus.txt"), data = tmp("data"), hf = tmp("hf");
  ASSERT_EQ(sh("init --config tiny --out " + model).code, 0);
  ASSERT_EQ(sh("tokenizer train --byte-level --out " + tok).code, 0);
  std::ofstream(corpus) << std::string(4000, 'a') << "\n";
  ASSERT_EQ(sh("data prepare -f " + corpus + " -o " + data).code, 0);
  std::ofstream(logits) << "keep";
  fs::create_directories(hf);
  std::ofstream(fs::path(hf) / "config.json") << "{}";
  const std::string model_bytes = read_bytes(model);
  const std::string writers[] = {
      "init --config tiny --out " + model,
      "forward -m " + model + " --tokens 1,2 --out " + logits,
      "grad -m " + model + " --tokens 1,2 --targets 2,-1 --out " + logits,
      "tokenizer train --byte-level --out " + tok,
      "tokenizer train -f " + corpus + " --vocab-size 300 -o " + tok,
      "data prepare --input " + corpus + " --out " + data,
      "convert " + hf + " --out " + model,
      "quantize " + model + " " + logits + " --type f32",
      "export " + model + " " + logits,
  };
  for (const std::string& args : writers) expect_error(args, "already exists; pass --force to replace it");
  EXPECT_EQ(read_bytes(model), model_bytes);
  EXPECT_EQ(read_bytes(logits), "keep");
  Result r = sh("forward -m " + model + " --tokens 1,2 --out " + logits + " --force");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(fs::file_size(logits), 2u * 512u * 4u);
  r = sh("data prepare -f " + corpus + " -o " + data + " --force");
  EXPECT_EQ(r.code, 0) << r.out;
  r = sh("init --config tiny --seed 7 --force --out " + model);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(read_bytes(model), model_bytes);
  for (const auto& p : {model, tok, logits, corpus}) fs::remove(p);
  fs::remove_all(data), fs::remove_all(hf);
}

TEST(Conventions, DirectoriesAndEmptyInputsAreRefused) {
  const std::string dir = tmp("adir"), empty = tmp("empty.txt"), tok = tmp("t.gguf");
  fs::create_directories(dir);
  std::ofstream(empty) << "";
  expect_error("tokenizer train -f " + dir + " --vocab-size 300 -o " + tok, "is a directory");
  expect_error("tokenizer train --input " + empty + " --vocab-size 300 -o " + tok, "the corpus is empty");
  EXPECT_FALSE(fs::exists(tok));
  ASSERT_EQ(sh("tokenizer train --byte-level -o " + tok).code, 0);
  expect_error("tokenize -m " + tok + " --file " + dir, "is a directory");
  expect_error("data prepare -f " + dir + " -o " + tmp("d"), "is a directory");
  expect_error("train --data " + dir + " -o " + empty + " --steps 2", empty + ": exists and is not a directory");
  expect_error("train --data " + dir + " -o " + empty + "/run --steps 2", "Not a directory");  // a path, not a bug
  fs::remove_all(dir), fs::remove(empty), fs::remove(tok);
}

TEST(Conventions, RandomSeedIsDrawnAndPrinted) {
  const std::string a = tmp("r1.gguf"), b = tmp("r2.gguf");
  const Result r = sh("init --config tiny -s -1 -o " + a);
  ASSERT_EQ(r.code, 0) << r.out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(seed: (\d+) \(drawn at random\))"))) << r.out;
  ASSERT_EQ(sh("init --config tiny --seed " + m[1].str() + " -o " + b).code, 0);
  EXPECT_EQ(read_bytes(a), read_bytes(b)) << "the printed seed does not repeat the run";
  fs::remove(a), fs::remove(b);
}

}  // namespace
