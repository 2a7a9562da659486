#include <algorithm>

#include "unmask/tokenizer/bpe.h"

namespace unmask::tok {

void MergeTable::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, Slot{kEmpty, {0, 0}});
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    size_t i = slot_of(s.key);
    while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void MergeTable::add(int32_t a, int32_t b, int32_t rank, int32_t id) {
  if ((size_ + 1) * 2 > slots_.size()) grow();  // at most half full
  const uint64_t k = key(a, b);
  size_t i = slot_of(k);
  for (; slots_[i].key != kEmpty; i = (i + 1) & mask_) {
    if (slots_[i].key == k) return;
  }
  slots_[i] = {k, {rank, id}};
  ++size_;
}

namespace {

constexpr int32_t kDead = -2;

// The heap's order: lowest rank first, then leftmost.
bool later(const BpeScratch::Cand& x, const BpeScratch::Cand& y) {
  return x.rank > y.rank || (x.rank == y.rank && x.left > y.left);
}

void push_pair(const MergeTable& table, BpeScratch& s, int32_t left, int32_t right) {
  if (left < 0 || right < 0) return;
  const auto* m = table.find(s.syms[left].id, s.syms[right].id);
  if (!m) return;
  s.heap.push_back({m->rank, left, right, s.syms[left].id, s.syms[right].id});
  std::push_heap(s.heap.begin(), s.heap.end(), later);
}

}  // namespace

void bpe_merge(const MergeTable& table, std::vector<int32_t>& ids, BpeScratch& s) {
  const int32_t n = int32_t(ids.size());
  if (n < 2) return;
  s.syms.resize(n);
  s.heap.clear();
  for (int32_t i = 0; i < n; ++i) s.syms[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1};
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(table, s, i, i + 1);
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), later);
    const BpeScratch::Cand c = s.heap.back();
    s.heap.pop_back();
    auto& l = s.syms[c.left];
    auto& r = s.syms[c.right];
    if (l.id != c.left_id || r.id != c.right_id || l.next != c.right) continue;  // stale
    l.id = table.find(c.left_id, c.right_id)->id;
    l.next = r.next;
    if (r.next >= 0) s.syms[r.next].prev = c.left;
    r.id = kDead;
    push_pair(table, s, l.prev, c.left);
    push_pair(table, s, c.left, l.next);
  }
  ids.clear();
  for (int32_t i = 0; i >= 0; i = s.syms[i].next) ids.push_back(s.syms[i].id);
}

namespace ref {

void bpe_merge(const MergeTable& table, std::vector<int32_t>& ids) {
  while (ids.size() >= 2) {
    size_t best = 0;
    const MergeTable::Merge* best_m = nullptr;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const auto* m = table.find(ids[i], ids[i + 1]);
      if (m && (!best_m || m->rank < best_m->rank)) {
        best = i;
        best_m = m;
      }
    }
    if (!best_m) return;
    ids[best] = best_m->id;
    ids.erase(ids.begin() + best + 1);
  }
}

}  // namespace ref

}  // namespace unmask::tok
