// Threads: one OpenMP pool for kernels and samplers. Work is split statically so that results do not depend on
// scheduling; reductions that must be deterministic are done per fixed chunk, then combined in order.
#pragma once

#include <omp.h>

#include <cstdint>

namespace unmask {

inline int num_threads() { return omp_get_max_threads(); }
inline void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

// Calls f(i) for i in [0, n), statically split across threads.
template <typename F>
void parallel_for(int64_t n, F&& f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace unmask
