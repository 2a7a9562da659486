// unmask generate as a front end: the default sampler follows the model, flags a sampler does not read are refused,
// -f and -p "" and -s -1 work, output that is not valid UTF-8 still gives valid JSON (alone and in a batch), and
// --visual writes no escape codes where stderr is not a terminal.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "tool_models.h"

namespace unmask {
namespace {

using json = nlohmann::json;

const std::string kReplacement = "\xEF\xBF\xBD";

std::string tmp(const std::string& name) { return test::temp_path("generate_cli", name); }

// Random untrained models without a tokenizer: a causal and a bidirectional one.
struct RandomModels {
  std::string llama = tmp("llama.gguf"), llada = tmp("llada.gguf");
  RandomModels() {
    EXPECT_EQ(test::sh("init --config tiny --arch llama --out " + llama).code, 0);
    EXPECT_EQ(test::sh("init --config tiny --arch llada --ctx 32 --out " + llada).code, 0);
  }
  ~RandomModels() { std::filesystem::remove(llama), std::filesystem::remove(llada); }
};

void expect_one_error_line(const test::Result& r, const std::string& args, const std::string& want) {
  EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << "\n" << r.out;
  EXPECT_TRUE(r.out.starts_with("unmask: error: ")) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(want), std::string::npos) << args << "\n" << r.out;
}

TEST(GenerateFrontEnd, EachRefusalIsOneLineAndExitCodeOne) {
  const RandomModels m;
  const std::string causal = "generate -m " + m.llama + " --prompt-tokens 1,2,3 -n 4 ";
  const std::string bidi = "generate -m " + m.llada + " --prompt-tokens 1,2,3 -n 8 ";
  const std::pair<std::string, std::string> cases[] = {
      {causal + "--sampler llada", "--sampler llada: this llama model is causal"},
      {causal + "--sampler mdlm", "--sampler mdlm: this llama model is causal"},
      {"generate -m " + m.llama + " --infill-tokens 1,M3,4 --sampler ar", "--infill: the ar sampler"},
      {"generate -m " + m.llama + " --infill-tokens 1,M3,4", "--infill: the ar sampler"},
      {bidi + "--sampler ar", "--sampler ar needs a causal model"},
      {bidi + "--sampler mdlm --threshold 0.9", "--threshold does not apply to --sampler mdlm"},
      {bidi + "--sampler llada --repeat-penalty 1.1", "--repeat-penalty does not apply to --sampler llada"},
      {bidi + "--alg entropy", "--alg does not apply to --sampler llada"},
      {bidi + "--sampler dream --remasking random", "--remasking does not apply to --sampler dream"},
      {bidi + "--sampler llada --eta 0.1", "--eta does not apply to --sampler llada"},
      {causal + "--steps 4", "--steps does not apply to --sampler ar"},
      {causal + "--block-length 2", "--block-length does not apply to --sampler ar"},
      {bidi + "--stop x", "--stop does not apply to --sampler llada"},
      {bidi + "--steps -1", "--steps -1: expected at least 1"},
      {bidi + "--steps 0", "--steps 0: expected at least 1"},
      {bidi + "--threshold 0", "--threshold 0: expected a value in (0, 1]"},
      {bidi + "--threshold 1.5", "--threshold 1.5: expected a value in (0, 1]"},
      {bidi + "-s -2", "--seed: -2 is not a seed"},
      {"generate -m " + m.llada + " -f /nonexistent/prompt.txt -n 4", "/nonexistent/prompt.txt"},
  };
  for (const auto& [args, want] : cases) expect_one_error_line(test::sh(args), args, want);
  std::string ids = "1";
  for (int i = 1; i < 40; ++i) ids += ",1";
  const std::string too_long = "generate -m " + m.llada + " --prompt-tokens " + ids + " -n 4";
  expect_one_error_line(test::sh(too_long), too_long, "the prompt is 40 tokens; the model's context is 32");
}

TEST(GenerateFrontEnd, TheDefaultSamplerFollowsTheModel) {
  const RandomModels m;
  test::Result r = test::sh("generate -m " + m.llama + " --prompt-tokens 1,2,3 -n 4 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["sampler"], "ar") << r.out;
  r = test::sh("generate -m " + m.llada + " --prompt-tokens 1,2,3 -n 4 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["sampler"], "llada") << r.out;
}

TEST(GenerateFrontEnd, PromptFromAFileEmptyPromptAndRandomSeed) {
  const test::ToolModels tm = test::tool_models();
  const std::string file = tmp("prompt.txt");
  std::ofstream(file) << "And God said\n";
  const std::string g = "generate -m " + tm.kjv_ar + " -n 8 ";
  const test::Result from_p = test::sh(g + "-p 'And God said' --json"), from_f = test::sh(g + "-f " + file + " --json");
  ASSERT_EQ(from_p.code, 0) << from_p.out;
  ASSERT_EQ(from_f.code, 0) << from_f.out;
  EXPECT_EQ(json::parse(from_f.out)["prompt"], json::parse(from_p.out)["prompt"])
      << "-f reads the file's text less its final newline";
  std::filesystem::remove(file);
  const test::Result empty = test::sh("generate -m " + tm.kjv_mdlm + " -p '' -n 8 --json");
  ASSERT_EQ(empty.code, 0) << empty.out;
  EXPECT_EQ(json::parse(empty.out)["ids"].size(), 8u) << empty.out;
  const test::Result seeded = test::sh(g + "-p 'And' -s -1 --temp 1");
  ASSERT_EQ(seeded.code, 0) << seeded.out;
  EXPECT_NE(seeded.out.find("seed: "), std::string::npos) << seeded.out;
}

// The ids and the text of one JSON line, checked: it parses, "ids" are there, "text" is valid and marks the bytes.
void expect_valid_json_with_replacements(const std::string& line) {
  json j;
  ASSERT_NO_THROW(j = json::parse(line)) << line;
  ASSERT_TRUE(j.contains("ids")) << line;
  EXPECT_FALSE(j["ids"].empty()) << line;
  const bool has_ff = std::find(j["ids"].begin(), j["ids"].end(), json(0xFF)) != j["ids"].end();
  EXPECT_TRUE(has_ff) << "the model was meant to emit byte 0xFF: " << line;
  EXPECT_NE(j["text"].get<std::string>().find(kReplacement), std::string::npos) << line;
}

TEST(GenerateFrontEnd, InvalidUtf8OutputStillGivesValidJson) {
  const test::ToolModels tm = test::tool_models();
  for (const std::string& model : {tm.junk_ar, tm.junk_mdlm}) {
    const test::Result r = test::sh("generate -m " + model + " --prompt-tokens 97 -n 12 --temp 0 --json");
    ASSERT_EQ(r.code, 0) << r.out;
    expect_valid_json_with_replacements(r.out);
    const test::Result plain = test::sh("generate -m " + model + " --prompt-tokens 97 -n 12 --temp 0");
    ASSERT_EQ(plain.code, 0) << plain.out;
    EXPECT_NE(plain.out.find(kReplacement), std::string::npos) << plain.out;
  }
  const test::Result infill = test::sh("generate -m " + tm.junk_mdlm + " --infill-tokens 195,M4,97 --json");
  ASSERT_EQ(infill.code, 0) << infill.out;
  expect_valid_json_with_replacements(infill.out);
}

TEST(GenerateFrontEnd, InvalidUtf8InABatchLosesNothing) {
  const test::ToolModels tm = test::tool_models();
  const std::string file = tmp("batch.txt");
  std::ofstream(file) << "97\n97,255\n97,97\n";
  for (const std::string& model : {tm.junk_ar, tm.junk_mdlm}) {
    const test::Result r = test::sh("generate -m " + model + " --batch-tokens " + file + " -n 10 --temp 0 --json");
    ASSERT_EQ(r.code, 0) << r.out;
    std::istringstream lines(r.out);
    int requests = 0;
    for (std::string line; std::getline(lines, line);) {
      if (!line.starts_with("{")) continue;  // the batch's figures on stderr
      expect_valid_json_with_replacements(line);
      ++requests;
    }
    EXPECT_EQ(requests, 3) << r.out;
  }
  std::filesystem::remove(file);
}

TEST(GenerateFrontEnd, VisualWritesNoEscapesWhereStderrIsNotATerminal) {
  const test::ToolModels tm = test::tool_models();
  for (const std::string& args : {"-m " + tm.kjv_mdlm + " -p And -n 16 --steps 8 --visual",
                                  "-m " + tm.kjv_ar + " -p And -n 16 --visual",
                                  "-m " + tm.junk_mdlm + " --infill-tokens 195,M4,97 --visual"}) {
    const test::Result r = test::sh("generate " + args);
    ASSERT_EQ(r.code, 0) << args << "\n" << r.out;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("forward passes"), std::string::npos) << args << "\n" << r.out;
  }
}

// On a terminal (a pseudo-terminal from script(1)), --visual redraws in place: the cursor goes up over the last frame,
// the screen is never cleared, and each step has its own hue (8 steps of 4 tokens: 8 colours).
TEST(GenerateFrontEnd, VisualOnATerminalRedrawsInPlaceWithAHuePerStep) {
  const test::ToolModels tm = test::tool_models();
  const std::string cmd = "script -qec \"" + std::string(UNMASK_BINARY) + " generate -m " + tm.kjv_mdlm +
                          " -p And -n 32 --steps 8 --visual\" /dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  for (int c; (c = fgetc(p)) != EOF;) out += char(c);
  ASSERT_EQ(pclose(p), 0) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("\x1b\\[[0-9]+A\r"))) << "cursor up over the previous frame";
  EXPECT_EQ(out.find("\x1b[2J"), std::string::npos) << "the screen is never cleared";
  std::set<std::string> hues;
  for (size_t at = out.find("\x1b[38;5;"); at != std::string::npos; at = out.find("\x1b[38;5;", at + 1))
    hues.insert(out.substr(at + 7, out.find('m', at) - at - 7));
  EXPECT_EQ(hues.size(), 8u) << "one hue per step";
}

// Streamed AR text is the text --json reports, stop strings included.
TEST(GenerateFrontEnd, StreamedTextIsTheWholeText) {
  const test::ToolModels tm = test::tool_models();
  for (const std::string& flags : {std::string("-n 40"), std::string("-n 40 --stop 'th'"), std::string("-n 3")}) {
    const std::string g = "generate -m " + tm.kjv_ar + " -p 'And God' " + flags;
    const test::Result plain = test::sh(g), j = test::sh(g + " --json");
    ASSERT_EQ(plain.code, 0) << plain.out;
    const std::string text = json::parse(j.out)["text"].get<std::string>() + "\n";
    EXPECT_EQ(plain.out.substr(0, text.size()), text) << flags;
    EXPECT_TRUE(plain.out.substr(text.size()).starts_with("ar: ")) << flags << "\n" << plain.out;
  }
}

// --draft-model: a trained diffusion model drafts for its AR twin (one tokenizer): the greedy ids are the AR model's,
// drafts are kept; a drafter whose tokenizer differs, or that has none, is one clear error.
TEST(GenerateFrontEnd, ADraftModelKeepsTheTargetsTokensAndMustShareItsTokenizer) {
  const test::ToolModels tm = test::tool_models();
  const std::string g = "generate -m " + tm.kjv_ar + " -p 'And God' -n 48 --json ";
  const test::Result ar = test::sh(g), spec = test::sh(g + "--sampler spec --draft-model " + tm.kjv_mdlm);
  ASSERT_EQ(ar.code, 0) << ar.out;
  ASSERT_EQ(spec.code, 0) << spec.out;
  const json a = json::parse(ar.out), s = json::parse(spec.out);
  EXPECT_EQ(s["ids"], a["ids"]);
  EXPECT_GT(s["stats"]["accepted"].get<int>(), 0) << spec.out;
  EXPECT_GT(s["stats"]["draft_passes"].get<int>(), 0);
  EXPECT_LT(s["stats"]["forward_passes"].get<int>(), a["stats"]["forward_passes"].get<int>());
  const RandomModels m;
  const std::string shipped = std::string(UNMASK_SOURCE_DIR) + "/models/kjv-mdlm.gguf";
  const std::pair<std::string, std::string> cases[] = {
      {"generate -m " + tm.kjv_ar + " -p x -n 4 --sampler spec --draft-model " + shipped,
       "the drafter must share the target's tokenizer"},
      {"generate -m " + tm.kjv_ar + " -p x -n 4 --sampler spec --draft-model " + m.llada,
       "carries a tokenizer and " + m.llada + " none"},
      {"generate -m " + tm.kjv_ar + " -p x -n 4 --draft-model " + tm.kjv_mdlm,
       "--draft-model does not apply to --sampler ar"},
      {"generate -m " + tm.kjv_mdlm + " -p x -n 4 --sampler spec --draft-model " + tm.kjv_mdlm,
       "the target verifies causally"},
      {"generate -m " + tm.kjv_ar + " -p x -n 4 --sampler spec --draft-model " + tm.kjv_ar,
       "--draft-model: the drafter must be a masked diffusion model"},
  };
  for (const auto& [args, want] : cases) expect_one_error_line(test::sh(args), args, want);
}

}  // namespace
}  // namespace unmask
