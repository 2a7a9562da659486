// Byte-level BPE merging over token ids, and the byte-level BPE tokenizer built on it.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace unmask::tok {

// Merge rules keyed by the ids of the two tokens: (a, b) -> the merged token and its rank (lower merges first).
class MergeTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  void add(int32_t a, int32_t b, int32_t rank, int32_t id) { map_.emplace(key(a, b), Merge{rank, id}); }
  const Merge* find(int32_t a, int32_t b) const {
    if (a < 0 || b < 0) return nullptr;
    auto it = map_.find(key(a, b));
    return it == map_.end() ? nullptr : &it->second;
  }
  size_t size() const { return map_.size(); }

 private:
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  std::unordered_map<uint64_t, Merge> map_;
};

// Reusable buffers for bpe_merge, so that encoding a long text allocates once.
struct BpeScratch {
  struct Sym {
    int32_t id, prev, next;
  };
  struct Cand {
    int32_t rank, left, right, left_id, right_id;
  };
  std::vector<Sym> syms;
  std::vector<Cand> heap;
};

// Merges one word in place. ids: the tokens of its characters (-1 where none; those never merge). Repeatedly
// merges the adjacent pair of lowest rank, the leftmost among equal ranks, until no pair has a rule. Candidate
// pairs wait in a priority queue and stale ones are skipped when popped: O(n log n) in the word length.
void bpe_merge(const MergeTable& table, std::vector<int32_t>& ids, BpeScratch& scratch);

namespace ref {
// The same result by the obvious loop: rescan every adjacent pair, merge the best, repeat. O(n^2).
void bpe_merge(const MergeTable& table, std::vector<int32_t>& ids);
}  // namespace ref

}  // namespace unmask::tok
