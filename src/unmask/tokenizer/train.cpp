#include "unmask/tokenizer/train.h"

#include <algorithm>
#include <map>
#include <unordered_map>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/tokenizer/pretokenize.h"
#include "unmask/tokenizer/unicode.h"

namespace unmask {

namespace {

uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

struct Word {
  std::vector<int32_t> ids;
  int64_t count;
};

struct Entry {
  int64_t count;
  uint64_t key;
  bool operator<(const Entry& o) const { return count < o.count || (count == o.count && key > o.key); }
};

class Trainer {
 public:
  explicit Trainer(std::vector<Word> words) : words_(std::move(words)), stamp_(words_.size(), -1) {
    for (int32_t w = 0; w < int32_t(words_.size()); ++w) {
      const auto& ids = words_[w].ids;
      for (size_t i = 0; i + 1 < ids.size(); ++i) add(pair_key(ids[i], ids[i + 1]), words_[w].count, w);
    }
    for (const auto& [key, count] : counts_) heap_.push_back({count, key});
    std::make_heap(heap_.begin(), heap_.end());
  }

  // The most frequent pair with at least min_count occurrences, or false when none is left.
  bool best(int64_t min_count, uint64_t& key) {
    while (!heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end());
      const Entry e = heap_.back();
      heap_.pop_back();
      const int64_t now = counts_[e.key];
      if (now != e.count) {  // stale: requeue with the true count
        if (now > 0) push(now, e.key);
        continue;
      }
      if (now < min_count) return false;
      key = e.key;
      return true;
    }
    return false;
  }

  void merge(uint64_t key, int32_t new_id) {
    const auto a = int32_t(key >> 32), b = int32_t(key & 0xFFFFFFFF);
    const std::vector<int32_t> where = where_[key];
    for (int32_t w : where) {
      if (stamp_[w] == new_id) continue;  // a word listed twice
      stamp_[w] = new_id;
      merge_word(w, a, b, new_id);
    }
  }

 private:
  void add(uint64_t key, int64_t delta, int32_t w) {
    counts_[key] += delta;
    if (delta > 0) {
      auto& list = where_[key];
      if (list.empty() || list.back() != w) list.push_back(w);
    }
  }
  void push(int64_t count, uint64_t key) {
    heap_.push_back({count, key});
    std::push_heap(heap_.begin(), heap_.end());
  }
  void merge_word(int32_t w, int32_t a, int32_t b, int32_t new_id);

  std::vector<Word> words_;
  std::vector<int32_t> stamp_;
  std::unordered_map<uint64_t, int64_t> counts_;
  std::unordered_map<uint64_t, std::vector<int32_t>> where_;
  std::vector<Entry> heap_;
};

// Replaces every (a, b) in the word, left to right, and moves the word's pair counts from before to after.
void Trainer::merge_word(int32_t w, int32_t a, int32_t b, int32_t new_id) {
  auto& ids = words_[w].ids;
  const int64_t c = words_[w].count;
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i + 1 < ids.size() && ids[i] == a && ids[i + 1] == b) {
      out.push_back(new_id);
      ++i;
    } else {
      out.push_back(ids[i]);
    }
  }
  std::map<uint64_t, int64_t> delta;  // ordered, so that the heap sees changes in a fixed order
  for (size_t i = 0; i + 1 < ids.size(); ++i) delta[pair_key(ids[i], ids[i + 1])] -= c;
  for (size_t i = 0; i + 1 < out.size(); ++i) delta[pair_key(out[i], out[i + 1])] += c;
  ids.swap(out);
  for (const auto& [key, d] : delta) {
    if (d == 0) continue;
    add(key, d, w);
    if (d > 0) push(counts_[key], key);
  }
}

// Distinct words of the corpus with their counts, in byte order (so that ids and ties do not depend on hashing).
std::vector<Word> count_words(std::string_view corpus, const std::string& pre) {
  std::vector<std::string_view> pieces;
  tok::Pretokenizer::by_name(pre).split(corpus, pieces);
  std::unordered_map<std::string_view, int64_t> counts;
  for (auto p : pieces) ++counts[p];
  std::vector<std::pair<std::string_view, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [text, count] : sorted) {
    Word w{{}, count};
    for (char ch : text) w.ids.push_back(uint8_t(ch));
    words.push_back(std::move(w));
  }
  return words;
}

// Appends the specials and sets their roles.
void add_specials(Vocab& v) {
  int32_t* roles[] = {&v.bos, &v.eos, &v.pad, &v.mask};
  for (size_t i = 0; i < std::size(kTrainedSpecials); ++i) {
    *roles[i] = v.size();
    v.tokens.push_back(kTrainedSpecials[i]);
    v.types.push_back(TokenType::kControl);
  }
  v.eot = v.eos;
  v.add_bos = true;
}

}  // namespace

Vocab byte_level_vocab() {
  Vocab v;
  v.kind = VocabKind::kBpe;
  v.pre = "gpt-2";
  v.add_space_prefix = false;
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(tok::bytes_to_alphabet(std::string(1, char(b))));
    v.types.push_back(TokenType::kNormal);
  }
  add_specials(v);
  return v;
}

Vocab train_bpe(std::string_view corpus, const TrainOptions& opts) {
  const int32_t base = 256 + int32_t(std::size(kTrainedSpecials));
  check(opts.vocab_size >= base, "tokenizer train: --vocab-size {} is too small (expected at least {}: 256 bytes and "
        "{} special tokens)", opts.vocab_size, base, std::size(kTrainedSpecials));
  Vocab v = byte_level_vocab();
  v.pre = opts.pre;
  v.tokens.resize(256);
  v.types.resize(256);
  std::vector<std::string> bytes(256);
  for (int b = 0; b < 256; ++b) bytes[b] = std::string(1, char(b));
  Trainer trainer(count_words(corpus, opts.pre));
  const int64_t wanted = opts.vocab_size - base;
  uint64_t key = 0;
  for (int64_t m = 0; m < wanted && trainer.best(opts.min_count, key); ++m) {
    const auto a = int32_t(key >> 32), b = int32_t(key & 0xFFFFFFFF);
    const int32_t id = int32_t(bytes.size());
    bytes.push_back(bytes[a] + bytes[b]);
    v.merges.emplace_back(v.tokens[a], v.tokens[b]);
    v.tokens.push_back(tok::bytes_to_alphabet(bytes.back()));
    v.types.push_back(TokenType::kNormal);
    trainer.merge(key, id);
    if (opts.progress) opts.progress(m + 1, wanted);
  }
  add_specials(v);
  return v;
}

}  // namespace unmask
