#include "unmask/kernels/embedding.h"

#include "unmask/base/error.h"
#include "unmask/kernels/quant.h"

namespace unmask {

namespace {

void check_embedding_args(const int32_t* tokens, int T, DType dtype, int V) {
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 || is_quant_dtype(dtype),
        "embedding_forward: table type {} is not supported (f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)",
        dtype_name(dtype));
  for (int t = 0; t < T; ++t)
    check(tokens[t] >= 0 && tokens[t] < V, "embedding_forward: token id {} at position {} is outside the vocabulary [0, {})",
          tokens[t], t, V);
}

}  // namespace

// table (V, C) of dtype, tokens (T) -> out (T, C): each token's row converted (dequantized) alone. Every id is
// checked before anything is written.
void embedding_forward(float* out, const int32_t* tokens, int T, const void* table, DType dtype, int V, int C) {
  check_embedding_args(tokens, T, dtype, V);
  const size_t row = row_bytes(dtype, C);
  const auto* base = static_cast<const char*>(table);
#pragma omp parallel for schedule(static) if (int64_t(T) * C >= 65536)
  for (int t = 0; t < T; ++t) row_to_f32(dtype, base + size_t(tokens[t]) * row, out + int64_t(t) * C, C);
}

}  // namespace unmask
