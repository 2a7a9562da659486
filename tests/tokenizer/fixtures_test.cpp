// llama.cpp's tokenizer test vectors (inputs encoded by the reference Hugging Face tokenizers, without special
// tokens) must come out exactly; and decode(encode(x)) == x for them and for random valid UTF-8.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "unmask/io/gguf.h"
#include "unmask/tokenizer/tokenizer.h"
#include "unmask/tokenizer/unicode.h"

namespace unmask {
namespace {

const std::string kFixtures = UNMASK_SOURCE_DIR "/../shared/fixtures/tokenizer";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// .inp: each input followed by "\n__ggml_vocab_test__\n"; .out: one line of ids per input.
std::vector<std::string> read_inputs(const std::string& path) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  const std::string all = slurp(path);
  std::vector<std::string> out;
  for (size_t pos = 0; pos < all.size();) {
    const size_t end = all.find(sep, pos);
    if (end == std::string::npos) break;
    out.push_back(all.substr(pos, end - pos));
    pos = end + sep.size();
  }
  return out;
}

std::vector<std::vector<int32_t>> read_outputs(const std::string& path) {
  std::vector<std::vector<int32_t>> out;
  std::istringstream in(slurp(path));
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    out.emplace_back();
    for (int32_t id; ls >> id;) out.back().push_back(id);
  }
  return out;
}

std::string show(const std::vector<int32_t>& ids) {
  std::string s;
  for (auto id : ids) s += std::to_string(id) + " ";
  return s;
}

// Random valid UTF-8: ASCII, whitespace runs, Latin-1, CJK and emoji mixed.
std::string random_utf8(std::mt19937& rng, int n) {
  static const uint32_t kRanges[][2] = {{0x20, 0x7E}, {0x09, 0x0A}, {0xA0, 0x24F}, {0x4E00, 0x4F00},
                                        {0x1F600, 0x1F64F}, {0x20, 0x20}, {0x400, 0x4FF}, {0x0E00, 0x0E7F}};
  std::string s;
  for (int i = 0; i < n; ++i) {
    const auto& r = kRanges[rng() % std::size(kRanges)];
    tok::append_utf8(s, r[0] + rng() % (r[1] - r[0] + 1));
  }
  return s;
}

class Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Fixture, MatchesReferenceIdsAndRoundTrips) {
  if (!std::filesystem::exists(kFixtures)) GTEST_SKIP() << "skipped: " << kFixtures << " is absent (no ../shared)";
  const std::string base = kFixtures + "/ggml-vocab-" + GetParam() + ".gguf";
  gguf::Reader reader(base);
  auto tok = load_tokenizer(reader);
  const auto inputs = read_inputs(base + ".inp");
  const auto expected = read_outputs(base + ".out");
  ASSERT_EQ(inputs.size(), expected.size()) << base;
  ASSERT_GT(inputs.size(), 0u);
  int passed = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto ids = tok->encode(inputs[i]);
    EXPECT_EQ(show(ids), show(expected[i])) << GetParam() << " input " << i << ": '" << inputs[i] << "'";
    EXPECT_EQ(tok->decode(ids), inputs[i]) << GetParam() << " round trip of input " << i;
    passed += show(ids) == show(expected[i]);
  }
  std::printf("%s: %d/%zu vectors pass\n", GetParam().c_str(), passed, inputs.size());
  std::mt19937 rng(1234);
  for (int i = 0; i < 200; ++i) {
    const std::string s = random_utf8(rng, 1 + i % 40);
    EXPECT_EQ(tok->decode(tok->encode(s)), s) << GetParam() << " random round trip " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, Fixture, ::testing::Values("gpt-2", "deepseek-llm", "llama-spm", "phi-3"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (auto& c : n) c = std::isalnum(uint8_t(c)) ? c : '_';
                           return n;
                         });

}  // namespace
}  // namespace unmask
