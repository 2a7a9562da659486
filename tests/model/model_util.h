// What the model tests share: random token sequences, a sequence's logits from a full forward pass, and the bound
// within which two computations of the same logits must agree.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "unmask/base/rng.h"
#include "unmask/model/model.h"

namespace unmask::test {

inline std::vector<int32_t> random_tokens(int n, int vocab, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(r.below(uint64_t(vocab)));
  return t;
}

inline std::vector<float> full_logits(Model& m, const std::vector<int32_t>& tokens) {
  Batch b;
  b.add(tokens);
  std::vector<float> out(tokens.size() * size_t(m.config().vocab));
  m.forward(b, out.data());
  return out;
}

// Two computations of the same logits that differ only in summation order (GEMM row blocking): every matmul stage
// (2L + 1 of them) may differ by K · eps relative to the logits' scale, K the longest reduction.
inline void expect_close(const float* got, const float* want, size_t n, const ModelConfig& c, const char* what) {
  float scale = 0;
  for (size_t i = 0; i < n; ++i) scale = std::max(scale, std::abs(want[i]));
  int K = std::max({c.d_model, c.ffn, c.ctx, c.q_dim()});
  double bound = (2 * c.n_layers + 1) * K * double(std::numeric_limits<float>::epsilon()) * scale;
  double worst = 0;
  for (size_t i = 0; i < n; ++i) worst = std::max(worst, double(std::abs(got[i] - want[i])));
  EXPECT_LE(worst, bound) << what;
  EXPECT_GT(scale, 0.0f) << what << ": logits are all zero, the comparison proves nothing";
}

}  // namespace unmask::test
