#include <cmath>
#include <cstring>
#include <limits>

#include "unmask/base/error.h"
#include "unmask/kernels/embedding.h"
#include "unmask/kernels/quant.h"

namespace unmask::ref {

namespace {

// binary16 decoded from its fields in double, independently of dtype.cpp.
double half_value(uint16_t h) {
  int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  double v;
  if (exp == 0) v = std::ldexp(double(mant), -24);
  else if (exp == 31) v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else v = std::ldexp(1.0 + mant / 1024.0, exp - 15);
  return sign ? -v : v;
}

double element(const void* table, DType dtype, int64_t i) {
  if (dtype == DType::F32) return static_cast<const float*>(table)[i];
  uint16_t h = static_cast<const uint16_t*>(table)[i];
  if (dtype == DType::F16) return half_value(h);
  uint32_t u = uint32_t(h) << 16;  // bf16: the top half of an f32
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

void embedding_forward(float* out, const int32_t* tokens, int T, const void* table, DType dtype, int V, int C) {
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16 || is_quant_dtype(dtype),
        "embedding_forward: type {} unsupported", dtype_name(dtype));
  for (int t = 0; t < T; ++t) {
    check(tokens[t] >= 0 && tokens[t] < V, "embedding_forward: token id {} at position {} is outside [0, {})",
          tokens[t], t, V);
    if (is_quant_dtype(dtype)) {  // the token's row of blocks, value by value
      ref::dequantize_row(dtype, static_cast<const uint8_t*>(table) + size_t(tokens[t]) * row_bytes(dtype, C),
                          out + int64_t(t) * C, C);
      continue;
    }
    for (int c = 0; c < C; ++c) out[int64_t(t) * C + c] = float(element(table, dtype, int64_t(tokens[t]) * C + c));
  }
}

}  // namespace unmask::ref
