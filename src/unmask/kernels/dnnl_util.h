// What the oneDNN-based kernels share (internal to kernels/): one CPU engine and stream for the process, and the row
// counts their primitives are built for.
#pragma once

#include <dnnl.hpp>

namespace unmask {

struct DnnlRuntime {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
};
DnnlRuntime& dnnl_runtime();

// A primitive is built (and cached) per row count. Samplers and masked-diffusion training ask for a different
// count at almost every call, so counts above 16 are rounded up to a multiple of 16, or of 2^⌊log2 T⌋ / 8 when that
// is larger (beyond 128 rows at most 1/8 of them are padding; 8 primitives per octave), the extra rows zero.
inline int gemm_rows(int T) {
  if (T <= 16) return T;
  int step = 16;
  while (step * 16 <= T) step *= 2;
  return (T + step - 1) / step * step;
}

}  // namespace unmask
