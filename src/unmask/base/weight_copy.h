// Memory for a copy of a weight made at load (a packed or repacked layout), 64-byte aligned. On this VM a page
// fault costs more than filling the page, so: from 4 MiB on, 2 MiB-aligned with transparent huge pages asked for
// (a fault per 2 MiB); below, an anonymous mapping the kernel populates in one call (no fault per 4 KiB page).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <memory>

#include "unmask/base/error.h"

namespace unmask {

struct WeightFree {
  size_t mapped = 0;  // bytes of an mmap'd copy; 0: posix_memalign'd
  void operator()(void* p) const {
    if (mapped) munmap(p, mapped);
    else std::free(p);
  }
};
using WeightCopy = std::unique_ptr<void, WeightFree>;

inline WeightCopy weight_copy(size_t bytes, const char* what) {
  constexpr size_t kHuge = size_t(2) << 20;
  check(bytes > 0, "{}: a weight of 0 bytes", what);
  if (bytes >= 2 * kHuge) {  // (a smaller weight would waste most of its last huge page)
    void* buf = nullptr;
    check(posix_memalign(&buf, kHuge, bytes) == 0, "{}: out of memory for a weight of {} bytes", what, bytes);
    madvise(buf, bytes / kHuge * kHuge, MADV_HUGEPAGE);  // a hint: without it, 4 KiB pages
    return WeightCopy(buf, WeightFree{});
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  check(p != MAP_FAILED, "{}: out of memory for a weight of {} bytes", what, bytes);
  madvise(p, bytes, MADV_POPULATE_WRITE);  // (Linux 5.14+; older kernels fault the pages in as they are written)
  return WeightCopy(p, WeightFree{bytes});
}

}  // namespace unmask
