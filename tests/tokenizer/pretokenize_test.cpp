// Each pre-tokenizer on hand-written cases: contractions, digits, CJK, emoji, whitespace runs, newlines.
#include <gtest/gtest.h>

#include "unmask/base/error.h"
#include "unmask/tokenizer/pretokenize.h"

namespace unmask::tok {
namespace {

std::vector<std::string> split(std::string_view name, std::string_view text) {
  std::vector<std::string_view> pieces;
  Pretokenizer::by_name(name).split(text, pieces);
  return {pieces.begin(), pieces.end()};
}

using V = std::vector<std::string>;

TEST(Pretokenize, Gpt2) {
  EXPECT_EQ(split("gpt-2", "I'm here, they'll go"), (V{"I", "'m", " here", ",", " they", "'ll", " go"}));
  EXPECT_EQ(split("gpt2", "I'M"), (V{"I", "'", "M"}));  // GPT-2's contractions are lower-case only
  EXPECT_EQ(split("gpt-2", "abc 12345"), (V{"abc", " 12345"}));
  EXPECT_EQ(split("gpt-2", "hello   world"), (V{"hello", "  ", " world"}));
  EXPECT_EQ(split("gpt-2", "a\n\nb"), (V{"a", "\n", "\n", "b"}));
  EXPECT_EQ(split("gpt-2", "end  "), (V{"end", "  "}));
  EXPECT_EQ(split("gpt-2", "hi 🙂🙂!"), (V{"hi", " 🙂🙂!"}));
  EXPECT_EQ(split("gpt-2", "你好 世界"), (V{"你好", " 世界"}));
}

TEST(Pretokenize, Llama3) {
  EXPECT_EQ(split("llama-bpe", "I'M 12345"), (V{"I", "'M", " ", "123", "45"}));
  EXPECT_EQ(split("llama-bpe", "a\n\nb"), (V{"a", "\n\n", "b"}));
  EXPECT_EQ(split("llama-bpe", "x  \n  y"), (V{"x", "  \n", " ", " y"}));
  EXPECT_EQ(split("llama-bpe", "(hello)"), (V{"(hello", ")"}));
  EXPECT_EQ(split("llama-bpe", "你好世界🙂"), (V{"你好世界", "🙂"}));
}

TEST(Pretokenize, Qwen2SingleDigits) {
  EXPECT_EQ(split("qwen2", "x 2024"), (V{"x", " ", "2", "0", "2", "4"}));
  EXPECT_EQ(split("qwen2", "we'RE"), (V{"we", "'RE"}));
}

TEST(Pretokenize, BailingMoeForLlada) {
  EXPECT_EQ(split("bailingmoe", "It's 42\n\nok"), (V{"It", "'s", " ", "4", "2", "\n\n", "ok"}));
  EXPECT_EQ(split("llada-moe", "a \n\n b"), (V{"a", " \n\n", " b"}));
  EXPECT_EQ(split("llada-moe", "a\r\n\r\nb"), (V{"a", "\r\n\r\n", "b"}));
}

TEST(Pretokenize, DeepseekLlm) {
  EXPECT_EQ(split("deepseek-llm", "Hello, 世界 123\nx"), (V{"Hello", ",", " ", "世界", " ", "123", "\n", "x"}));
}

TEST(Pretokenize, DeepseekCoder) {
  EXPECT_EQ(split("deepseek-coder", "int x=42;\n"), (V{"int", " x", "=", "4", "2", ";", "\n"}));
}

TEST(Pretokenize, StarcoderFamilySplitsDigits) {
  for (auto name : {"starcoder", "refact", "smollm"}) {
    EXPECT_EQ(split(name, "v 123"), (V{"v", " ", "1", "2", "3"})) << name;
  }
}

TEST(Pretokenize, FalconAndMptAndNeox) {
  EXPECT_EQ(split("falcon", "ab... 1234"), (V{"ab", "...", " ", "123", "4"}));
  EXPECT_EQ(split("mpt", "it's 99"), (V{"it", "'s", " 99"}));
  EXPECT_EQ(split("gpt-neox", "it's 99"), (V{"it", "'s", " 99"}));
}

TEST(Pretokenize, InvalidUtf8BecomesItsOwnPiece) {
  EXPECT_EQ(split("gpt-2", "ab\xff" "cd"), (V{"ab", "\xff", "cd"}));
  EXPECT_EQ(split("llama-bpe", "\xc3"), (V{"\xc3"}));
}

TEST(Pretokenize, PiecesCoverTheText) {
  const std::string text = "Mixed: I'd 1234567 ünïcödé\t\ttabs  \r\n 日本語テキスト 🙂👍🏽 end\xfe ";
  for (auto name : {"default", "gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", "falcon", "mpt",
                    "starcoder", "refact", "gpt-neox", "smollm", "bailingmoe"}) {
    std::string joined;
    for (const auto& p : split(name, text)) {
      EXPECT_FALSE(p.empty()) << name;
      joined += p;
    }
    EXPECT_EQ(joined, text) << name;
  }
}

TEST(Pretokenize, UnknownNameListsKnownOnes) {
  try {
    Pretokenizer::by_name("no-such-pre");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-pre"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("llama-bpe"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bailingmoe"), std::string::npos) << e.what();
  }
}

TEST(Pretokenize, BadRegexIsAnError) { EXPECT_THROW(Pretokenizer({"(unclosed"}), Error); }

}  // namespace
}  // namespace unmask::tok
