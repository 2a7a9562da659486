// Byte-level BPE: pre-tokenize with the vocabulary's regexes, map each byte to its alphabet token, merge by rank.
#include <array>
#include <unordered_map>

#include "unmask/base/error.h"
#include "unmask/tokenizer/bpe.h"
#include "unmask/tokenizer/pretokenize.h"
#include "unmask/tokenizer/tokenizer.h"
#include "unmask/tokenizer/unicode.h"

namespace unmask {

namespace {

class BpeTokenizer final : public Tokenizer {
 public:
  BpeTokenizer(Vocab vocab, bool reference)
      : Tokenizer(std::move(vocab)),
        pre_(vocab_.pre_patterns.empty() ? tok::Pretokenizer::patterns_for(vocab_.pre) : vocab_.pre_patterns),
        reference_(reference) {
    for (int b = 0; b < 256; ++b) {
      std::string ch;
      tok::append_utf8(ch, tok::byte_to_codepoint(uint8_t(b)));
      byte_ids_[b] = find_token(ch);
    }
    build_merges();
    init_pieces();
  }

 protected:
  void encode_text(std::string_view text, bool, std::vector<int32_t>& out) const override;
  std::string piece_of(int32_t id) const override;

 private:
  void build_merges();
  void encode_word(std::string_view word, std::vector<int32_t>& ids, tok::BpeScratch& scratch,
                   std::vector<int32_t>& out) const;

  tok::Pretokenizer pre_;
  bool reference_;
  tok::MergeTable merges_;
  std::array<int32_t, 256> byte_ids_{};
};

void BpeTokenizer::build_merges() {
  for (size_t r = 0; r < vocab_.merges.size(); ++r) {
    const auto& [a, b] = vocab_.merges[r];
    const int32_t ia = find_token(a), ib = find_token(b), im = find_token(a + b);
    const char* missing = ia < 0 ? a.c_str() : ib < 0 ? b.c_str() : im < 0 ? "" : nullptr;
    if (missing) {
      fail("merge {} '{} {}' names a token missing from the vocabulary: '{}'", r, a, b,
           *missing ? std::string(missing) : a + b);
    }
    merges_.add(ia, ib, int32_t(r), im);
  }
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& ids, tok::BpeScratch& scratch,
                               std::vector<int32_t>& out) const {
  if (vocab_.ignore_merges) {
    const int32_t whole = find_token(tok::bytes_to_alphabet(word));
    if (whole >= 0) {
      out.push_back(whole);
      return;
    }
  }
  ids.clear();
  for (char c : word) ids.push_back(byte_ids_[uint8_t(c)]);
  if (reference_) {
    tok::ref::bpe_merge(merges_, ids);
  } else {
    tok::bpe_merge(merges_, ids, scratch);
  }
  for (int32_t id : ids) {
    if (id >= 0) out.push_back(id);  // a byte without a token is dropped, as llama.cpp does
  }
}

void BpeTokenizer::encode_text(std::string_view text, bool, std::vector<int32_t>& out) const {
  std::vector<std::string_view> words;
  if (merges_.size() == 0) {
    words.push_back(text);  // bytes only: cutting into words changes nothing
  } else {
    pre_.split(text, words);
  }
  std::vector<int32_t> ids;
  tok::BpeScratch scratch;
  if (reference_) {
    for (auto w : words) encode_word(w, ids, scratch, out);
    return;
  }
  // Words repeat: within this call, each distinct word is merged once and its ids copied after that.
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;  // word -> [begin, end) in out
  for (auto w : words) {
    auto [it, fresh] = seen.try_emplace(w);
    if (!fresh) {
      const auto [b, e] = it->second;
      for (size_t i = b; i < e; ++i) out.push_back(out[i]);
      continue;
    }
    const size_t begin = out.size();
    encode_word(w, ids, scratch, out);
    it->second = {begin, out.size()};
  }
}

std::string BpeTokenizer::piece_of(int32_t id) const {
  const auto t = vocab_.types[id];
  if (t == TokenType::kNormal || t == TokenType::kByte) return tok::alphabet_to_bytes(vocab_.tokens[id]);
  if (t == TokenType::kUnused) return {};
  return vocab_.tokens[id];  // control, unknown and user-defined tokens print their text
}

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(Vocab vocab, bool reference) {
  return std::make_unique<BpeTokenizer>(std::move(vocab), reference);
}

}  // namespace unmask
