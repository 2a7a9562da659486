// Byte-level BPE: merges (priority queue against the quadratic reference), tokenizer.json in both merge
// encodings, special tokens, BOS handling, streaming decode and bad input.
#include <gtest/gtest.h>

#include <random>

#include "tok_test_util.h"
#include "unmask/base/error.h"
#include "unmask/tokenizer/bpe.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask {
namespace {

using testing::add_merge;
using testing::bytes_vocab;

Vocab hello_vocab() {
  Vocab v = bytes_vocab();
  add_merge(v, "l", "l");
  add_merge(v, "h", "e");
  add_merge(v, "he", "ll");
  add_merge(v, "hell", "o");
  add_merge(v, " ", "w");
  add_merge(v, " w", "o");
  return v;
}

TEST(Bpe, MergesByRank) {
  auto tok = make_tokenizer(hello_vocab());
  const auto ids = tok->encode("hello wo");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(tok->token_bytes(ids[0]), "hello");
  EXPECT_EQ(tok->token_bytes(ids[1]), " wo");
  EXPECT_EQ(tok->decode(ids), "hello wo");
  EXPECT_EQ(tok->encode("x"), (std::vector<int32_t>{'x'}));  // bytes are their own ids here
}

TEST(Bpe, PriorityQueueEqualsQuadraticReference) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    tok::MergeTable table;
    const int n_sym = 6, n_merges = 40;
    int32_t next = n_sym;
    for (int r = 0; r < n_merges; ++r) {
      const auto a = int32_t(rng() % next), b = int32_t(rng() % next);
      table.add(a, b, r, next++);
    }
    tok::BpeScratch scratch;
    for (int w = 0; w < 50; ++w) {
      std::vector<int32_t> word(1 + rng() % 30);
      for (auto& x : word) x = int32_t(rng() % n_sym);
      auto fast = word, slow = word;
      tok::bpe_merge(table, fast, scratch);
      tok::ref::bpe_merge(table, slow);
      ASSERT_EQ(fast, slow) << "trial " << trial << " word " << w;
    }
  }
}

TEST(Bpe, SpecialTokensOnlyWhenAsked) {
  Vocab v = hello_vocab();
  auto tok = make_tokenizer(v);
  const int32_t eos = tok->role(TokenRole::kEos);
  ASSERT_GE(eos, 0);
  const auto plain = tok->encode("hello<|eos|>");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), eos), 0);
  EXPECT_EQ(tok->decode(plain), "hello<|eos|>");
  const auto parsed = tok->encode("hello<|eos|>", false, true);
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[1], eos);
  EXPECT_EQ(tok->decode(parsed), "hello<|eos|>");
  EXPECT_EQ(tok->decode(parsed, true), "hello");
}

TEST(Bpe, RolesAndNoSecondBos) {
  auto tok = make_tokenizer(hello_vocab());
  const int32_t bos = tok->role(TokenRole::kBos);
  EXPECT_GE(tok->role(TokenRole::kMask), 0);
  EXPECT_GE(tok->role(TokenRole::kPad), 0);
  EXPECT_EQ(tok->role(TokenRole::kEot), tok->role(TokenRole::kEos));
  EXPECT_EQ(tok->encode("hello", true).front(), bos);
  EXPECT_EQ(tok->encode("hello", false).front(), tok->find_token("hello"));
  const auto ids = tok->encode("<|bos|>hello", true, true);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), bos), 1);
  EXPECT_EQ(tok->encode("", true), (std::vector<int32_t>{bos}));
  EXPECT_TRUE(tok->encode("").empty());
}

TEST(Bpe, InvalidUtf8IsEncodedAsItsBytes) {
  auto tok = make_tokenizer(hello_vocab());
  const std::string bad = "hello\xff\xc3 wo\xe2\x82";
  const auto ids = tok->encode(bad);
  EXPECT_EQ(tok->decode(ids), bad);
  EXPECT_NE(std::find(ids.begin(), ids.end(), 0xff), ids.end());
}

TEST(Bpe, StreamingNeverSplitsACharacter) {
  auto tok = make_tokenizer(bytes_vocab());  // one token per byte
  const std::string text = "a€🙂b";
  const auto ids = tok->encode(text);
  StreamDecoder d(*tok);
  std::string all;
  for (int32_t id : ids) {
    const std::string out = d.push(id);
    EXPECT_TRUE(tok::is_valid_utf8(out)) << "emitted half a character";
    all += out;
  }
  all += d.finish();
  EXPECT_EQ(all, text);
  StreamDecoder d2(*tok);
  EXPECT_EQ(d2.push(0xE2), "");  // held: the start of a 3-byte character
  EXPECT_EQ(d2.finish(), "\xE2");
}

TEST(Bpe, MergeNamingAMissingTokenIsAnError) {
  Vocab v = bytes_vocab();
  v.merges.emplace_back("a", "zzz");
  try {
    make_tokenizer(v);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zzz"), std::string::npos) << e.what();
  }
}

TEST(Bpe, EmptyVocabularyIsAnError) {
  Vocab v;
  EXPECT_THROW(make_tokenizer(v), Error);
  Vocab bad = bytes_vocab();
  bad.bos = bad.size() + 5;
  EXPECT_THROW(make_tokenizer(bad), Error);
  Vocab unknown = bytes_vocab();
  unknown.pre = "nonsense";
  EXPECT_THROW(make_tokenizer(unknown), Error);
}

TEST(Bpe, TokenizerJsonBothMergeEncodingsAndAddedTokens) {
  testing::TempDir dir;
  auto write = [&](const std::string& name, const std::string& merges) {
    return dir.write(name, R"({"model": {"type": "BPE", "vocab": {"h": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4,
      "he": 5, "ll": 6, "hell": 7, "hello": 8, "Ġh": 9}, "merges": )" + merges + R"(},
      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
      "decoder": {"type": "ByteLevel"},
      "added_tokens": [{"id": 10, "content": "<|endoftext|>", "special": true, "lstrip": false, "rstrip": false},
                       {"id": 11, "content": "<tag>", "special": false, "lstrip": true, "rstrip": true}]})");
  };
  const auto a = load_tokenizer_json(write("a.json", R"(["h e", "l l", "he ll", "hell o", "Ġ h"])"));
  const auto b = load_tokenizer_json(write("b.json", R"([["h","e"], ["l","l"], ["he","ll"], ["hell","o"], ["Ġ","h"]])"));
  for (const auto* tok : {a.get(), b.get()}) {
    EXPECT_EQ(tok->encode("hello"), (std::vector<int32_t>{8}));
    EXPECT_EQ(tok->encode("hello hello"), (std::vector<int32_t>{8, 4, 8}));  // "h e" outranks "Ġ h"
    EXPECT_EQ(tok->encode("hello<|endoftext|>", false, true), (std::vector<int32_t>{8, 10}));
    EXPECT_EQ(tok->encode("hello  <tag>  hello"), (std::vector<int32_t>{8, 11, 8}));  // added, strips spaces
    EXPECT_EQ(tok->role(TokenRole::kEos), 10);
  }
  const auto bad = dir.write("bad.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]},
      "pre_tokenizer": {"type": "ByteLevel"}})");
  EXPECT_THROW(load_tokenizer_json(bad), Error);
  EXPECT_THROW(load_tokenizer_json(dir.write("x.json", "{not json")), Error);
  EXPECT_THROW(load_tokenizer_json((dir.path / "missing.json").string()), Error);
}

}  // namespace
}  // namespace unmask

namespace unmask {
namespace {

TEST(Bpe, TokenizerJsonWithWrongTypesIsAnError) {
  testing::TempDir dir;
  const auto p = dir.write("w.json", R"({"model": {"type": "BPE", "vocab": {"a": "zero"}},
      "pre_tokenizer": {"type": "ByteLevel"}})");
  try {
    load_tokenizer_json(p);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("w.json"), std::string::npos) << e.what();
  }
}

// Found by tests/fuzz (tokenizer_json): an id of 2.7e62 reached a float-to-integer conversion out of range.
TEST(Bpe, TokenizerJsonIdsAreIntegersInRange) {
  testing::TempDir dir;
  for (const std::string id : {"2.77e62", "1.5", "-1", "16777216", "\"3\"", "18446744073709551615"}) {
    const auto vocab = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": )" + id + R"(}, "merges": []},
        "pre_tokenizer": {"type": "ByteLevel"}})";
    const auto added = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
        "pre_tokenizer": {"type": "ByteLevel"}, "added_tokens": [{"id": )" + id + R"(, "content": "<x>"}]})";
    for (const auto& text : {vocab, added}) {
      std::string msg = "no error";
      try {
        load_tokenizer_json(dir.write("i.json", text));
      } catch (const Error& e) {
        msg = e.what();
      }
      EXPECT_NE(msg.find("i.json: token"), std::string::npos) << id << ": " << msg;
      EXPECT_NE(msg.find("expected an integer in 0..2^24"), std::string::npos) << id << ": " << msg;
    }
  }
  EXPECT_EQ(load_tokenizer_json(dir.write("ok.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1},
      "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}})"))->n_vocab(), 2);
}

}  // namespace
}  // namespace unmask
