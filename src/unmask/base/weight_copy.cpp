#include "unmask/base/weight_copy.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>

#include "unmask/base/error.h"

namespace unmask {

namespace {

constexpr size_t kHuge = size_t(2) << 20, kChunk = 16 * kHuge;

void* huge_alloc(size_t bytes, const char* what) {
  void* p = nullptr;
  check(posix_memalign(&p, kHuge, bytes) == 0, "{}: out of memory for a weight of {} bytes", what, bytes);
  madvise(p, (bytes + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);  // a hint: without it, 4 KiB pages
  return p;
}

std::mutex chunks_mu;
WeightChunk* open_chunk = nullptr;  // the chunk new small copies go into

}  // namespace

struct WeightChunk {
  void* base;
  size_t used = 0;
  int copies = 0;
};

void WeightFree::operator()(void* p) const {
  if (!chunk) return std::free(p);
  std::lock_guard lock(chunks_mu);
  if (--chunk->copies > 0 || chunk == open_chunk) return;
  std::free(chunk->base);
  delete chunk;
}

WeightCopy weight_copy(size_t bytes, const char* what) {
  check(bytes > 0, "{}: a weight of 0 bytes", what);
  if (bytes > kChunk / 4) return WeightCopy(huge_alloc(bytes, what), WeightFree{});
  std::lock_guard lock(chunks_mu);
  const size_t size = (bytes + 63) / 64 * 64;
  if (!open_chunk || open_chunk->used + size > kChunk) {
    WeightChunk* full = open_chunk;
    open_chunk = new WeightChunk{huge_alloc(kChunk, what)};
    if (full && full->copies == 0) std::free(full->base), delete full;
  }
  void* p = static_cast<uint8_t*>(open_chunk->base) + open_chunk->used;
  open_chunk->used += size, ++open_chunk->copies;
  return WeightCopy(p, WeightFree{open_chunk});
}

}  // namespace unmask
