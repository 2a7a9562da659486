// What the oneDNN-based kernels share (internal to kernels/): one CPU engine and stream for the process, and the row
// counts their primitives are built for.
#pragma once

#include <dnnl.hpp>

#include <cstdint>
#include <vector>

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

// A 2-D blocked layout (oneDNN's packed weights, such as BA16a64b) as the offset of each index along each dimension:
// element (i0, i1) lives at off0[i0] + off1[i1] elements from the start (a blocked layout's offset is a sum of one term
// per dimension: the outer block's stride and the index within each inner block). Empty when md is not a blocked 2-D
// layout. Indices run over the padded dimensions.
struct BlockedOffsets {
  std::vector<int64_t> off0, off1;
  bool empty() const { return off0.empty(); }
};
BlockedOffsets blocked_offsets(const dnnl::memory::desc& md);

// w (N, K) row-major, elements of `bytes` bytes (4: f32, 2: bf16) -> dst in the blocked layout md of the (K, N) matrix
// wᵀ (what a matmul's weights argument holds): the same bytes as dnnl::reorder from the (K, N) view with strides
// {1, K}, padding zero. Threads split the rows of w in blocks. False (dst untouched) when md is not a blocked 2-D
// layout; the caller then reorders through oneDNN.
bool pack_blocked(const void* w, int N, int K, int bytes, const dnnl::memory::desc& md, void* dst);

}  // namespace unmask
