// Byte-level BPE merging over token ids, and the byte-level BPE tokenizer built on it.
#pragma once

#include <cstdint>
#include <vector>

namespace unmask::tok {

// Merge rules keyed by the ids of the two tokens: (a, b) -> the merged token and its rank (lower merges first).
// An open-addressing hash table (linear probing), since encoding is mostly these lookups.
class MergeTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  // Adds a rule; a pair already present keeps its first (lower-ranked) rule.
  void add(int32_t a, int32_t b, int32_t rank, int32_t id);
  const Merge* find(int32_t a, int32_t b) const {
    if (a < 0 || b < 0 || slots_.empty()) return nullptr;
    const uint64_t k = key(a, b);
    for (size_t i = slot_of(k);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == k) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t key;
    Merge merge;
  };
  static constexpr uint64_t kEmpty = ~uint64_t(0);
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  size_t slot_of(uint64_t k) const { return size_t((k * 0x9E3779B97F4A7C15ull) >> 32) & mask_; }
  void grow();
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
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
