// Activation buffers of a forward pass, reused across calls so that steady-state decoding allocates nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "unmask/kernels/attention.h"
#include "unmask/model/model.h"

namespace unmask {

struct Model::Segment {
  int row0 = 0;   // first query row (into the N rows of the call)
  int n = 0;      // query rows
  int key0 = 0;   // first key row in the layer's key buffer
  int n_keys = 0; // keys the segment's queries may draw from, positions 0 .. n_keys-1
};

struct Model::Scratch {
  std::vector<float> x, h, q, k, v, wide, att, act, tmp, hr;  // (N, ...) rows
  std::vector<KeySpan> spans;                               // (N)
  std::vector<int32_t> pos;                                 // (N)
  template <typename T>
  static T* fit(std::vector<T>& b, size_t n) {
    if (b.size() < n) b.resize(n);
    return b.data();
  }
};

}  // namespace unmask
