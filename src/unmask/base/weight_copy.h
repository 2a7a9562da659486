// Memory for a copy of a weight made at load (a packed or repacked layout): 64-byte aligned, and from 4 MiB on
// 2 MiB-aligned with transparent huge pages asked for (on this VM a 4 KiB page fault costs more than filling the
// page). Freed with std::free.
#pragma once

#include <sys/mman.h>

#include <cstdlib>
#include <memory>

#include "unmask/base/error.h"

namespace unmask {

using WeightCopy = std::unique_ptr<void, void (*)(void*)>;

inline WeightCopy weight_copy(size_t bytes, const char* what) {
  constexpr size_t kHuge = size_t(2) << 20;
  const bool huge = bytes >= 2 * kHuge;  // a small weight would waste most of its last huge page
  void* buf = nullptr;
  check(posix_memalign(&buf, huge ? kHuge : 64, bytes) == 0, "{}: out of memory for a weight of {} bytes", what, bytes);
  if (huge) madvise(buf, bytes / kHuge * kHuge, MADV_HUGEPAGE);  // a hint: without it, 4 KiB pages
  return WeightCopy(buf, std::free);
}

}  // namespace unmask
