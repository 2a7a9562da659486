// A non-owning view of a tensor: a pointer, an element type and up to four dimensions, ne[0] fastest (GGUF order).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "unmask/tensor/dtype.h"

namespace unmask {

struct TensorView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int ndim = 0;
  std::array<int64_t, 4> ne{1, 1, 1, 1};

  int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t rows() const { return nelements() / ne[0]; }
  size_t nbytes() const { return row_bytes(dtype, ne[0]) * size_t(rows()); }
  const float* f32() const { return static_cast<const float*>(data); }
  std::vector<int64_t> shape() const { return {ne.begin(), ne.begin() + ndim}; }
};

}  // namespace unmask
