// BPE training: deterministic, learns the frequent pairs, round-trips, writes a GGUF that loads back.
#include <gtest/gtest.h>

#include "tok_test_util.h"
#include "unmask/base/error.h"
#include "unmask/io/gguf.h"
#include "unmask/tokenizer/tokenizer.h"
#include "unmask/tokenizer/train.h"

namespace unmask {
namespace {

std::string corpus() {
  std::string s;
  for (int i = 0; i < 200; ++i) {
    s += "the cat sat on the mat. the dog sat on the log! " + std::to_string(i % 17) + "\n";
  }
  return s + "rare wörds ünïcode 日本語 🙂\n";
}

TEST(Train, DeterministicAndUseful) {
  TrainOptions opts;
  opts.vocab_size = 280;
  int64_t calls = 0;
  opts.progress = [&](int64_t, int64_t total) {
    ++calls;
    EXPECT_EQ(total, 280 - 260);
  };
  const Vocab a = train_bpe(corpus(), opts);
  const Vocab b = train_bpe(corpus(), {280, "gpt-2", 2, nullptr});
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.size(), 280);
  EXPECT_EQ(calls, 20);
  auto tok = make_tokenizer(a);
  EXPECT_EQ(tok->encode(" the").size(), 1u);  // the most frequent word is one token
  EXPECT_EQ(tok->token_text(tok->role(TokenRole::kMask)), "<|mask|>");
  EXPECT_EQ(tok->token_text(tok->role(TokenRole::kBos)), "<|bos|>");
  EXPECT_EQ(tok->token_text(tok->role(TokenRole::kEos)), "<|eos|>");
  EXPECT_EQ(tok->token_text(tok->role(TokenRole::kPad)), "<|pad|>");
  for (const std::string& s : {corpus(), std::string("unseen 🙂 text\xff")}) EXPECT_EQ(tok->decode(tok->encode(s)), s);
}

TEST(Train, TooSmallVocabularyIsAnError) { EXPECT_THROW(train_bpe("abc", {100, "gpt-2", 2, nullptr}), Error); }

TEST(Train, StopsWhenNoPairRepeats) {
  const Vocab v = train_bpe("ab", {1000, "gpt-2", 2, nullptr});
  EXPECT_EQ(v.size(), 260);
}

TEST(Train, ByteLevelVocabulary) {
  auto tok = make_tokenizer(byte_level_vocab());
  EXPECT_EQ(tok->n_vocab(), 260);
  const std::string s = "Hé\n";
  EXPECT_EQ(tok->encode(s), (std::vector<int32_t>{'H', 0xC3, 0xA9, '\n'}));
  EXPECT_EQ(tok->decode(tok->encode(s)), s);
  EXPECT_EQ(tok->encode("<|mask|>", false, true), (std::vector<int32_t>{259}));
}

TEST(Train, GgufRoundTrip) {
  testing::TempDir dir;
  const Vocab v = train_bpe(corpus(), {320, "gpt-2", 2, nullptr});
  gguf::Writer w;
  vocab_to_gguf(v, w);
  const std::string path = (dir.path / "tok.gguf").string();
  w.write(path);
  gguf::Reader r(path);
  EXPECT_EQ(r.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(r.get_int("tokenizer.ggml.mask_token_id"), v.mask);
  auto loaded = load_tokenizer(r);
  auto direct = make_tokenizer(v);
  const std::string text = corpus().substr(0, 500);
  EXPECT_EQ(loaded->encode(text), direct->encode(text));
  EXPECT_EQ(loaded->role(TokenRole::kPad), v.pad);
}

}  // namespace
}  // namespace unmask
