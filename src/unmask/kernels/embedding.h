// Token embedding lookup.
#pragma once

#include <cstdint>

#include "unmask/tensor/dtype.h"

namespace unmask {

// table (V, C) of dtype (F32, F16, BF16, or quantized rows of any type of quant.h), tokens (T) -> out (T, C) in
// f32. Token ids must be in [0, V): checked,
// throws Error naming the position and the id.
void embedding_forward(float* out, const int32_t* tokens, int T, const void* table, DType dtype, int V, int C);

namespace ref {
void embedding_forward(float* out, const int32_t* tokens, int T, const void* table, DType dtype, int V, int C);
}

}  // namespace unmask
