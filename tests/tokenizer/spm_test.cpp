// SentencePiece: score-ordered merges, the space prefix, byte fallback, decoding.
#include <gtest/gtest.h>

#include "tok_test_util.h"
#include "unmask/base/error.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask {
namespace {

// <unk> <s> </s>, the 256 byte tokens, then pieces with scores (higher merges first).
Vocab spm_vocab() {
  Vocab v;
  v.kind = VocabKind::kSpm;
  v.pre = "default";
  auto add = [&](const std::string& t, TokenType type, float score) {
    v.tokens.push_back(t);
    v.types.push_back(type);
    v.scores.push_back(score);
  };
  add("<unk>", TokenType::kUnknown, 0);
  add("<s>", TokenType::kControl, 0);
  add("</s>", TokenType::kControl, 0);
  for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), TokenType::kByte, 0);
  const std::pair<const char*, float> pieces[] = {{"▁", -1}, {"h", -2}, {"e", -2}, {"l", -2}, {"o", -2},
                                                  {"w", -2}, {"ll", -3}, {"he", -4}, {"llo", -5}, {"hello", -6},
                                                  {"▁hello", -7}, {"▁w", -8}};
  for (auto [t, s] : pieces) add(t, TokenType::kNormal, s);
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

TEST(Spm, MergesAndSpacePrefix) {
  auto tok = make_tokenizer(spm_vocab());
  const auto ids = tok->encode("hello");
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(tok->token_text(ids[0]), "▁hello");
  EXPECT_EQ(tok->decode(ids), "hello");
  const auto two = tok->encode("hello wo");
  ASSERT_EQ(two.size(), 3u);
  EXPECT_EQ(tok->token_text(two[1]), "▁w");
  EXPECT_EQ(tok->decode(two), "hello wo");
  EXPECT_EQ(tok->encode("hello", true).front(), 1);
}

TEST(Spm, ByteFallback) {
  auto tok = make_tokenizer(spm_vocab());
  const auto ids = tok->encode("hé");
  // ▁ h, then é as <0xC3> <0xA9>
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(tok->token_text(ids[2]), "<0xC3>");
  EXPECT_EQ(tok->token_text(ids[3]), "<0xA9>");
  EXPECT_EQ(tok->decode(ids), "hé");
  const std::string bad = "he\xff";
  EXPECT_EQ(tok->decode(tok->encode(bad)), bad);
}

TEST(Spm, SpecialTokensAndSpaceAfterThem) {
  auto tok = make_tokenizer(spm_vocab());
  EXPECT_EQ(tok->decode(tok->encode("</s>")), "</s>");  // plain text: not the eos token
  const auto ids = tok->encode("hello</s>hello", false, true);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], 2);
  EXPECT_EQ(tok->token_text(ids[2]), "▁hello");  // a space prefix again after a special token
}

TEST(Spm, NeedsScores) {
  Vocab v = spm_vocab();
  v.scores.clear();
  EXPECT_THROW(make_tokenizer(v), Error);
}

}  // namespace
}  // namespace unmask
