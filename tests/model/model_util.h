// What the model tests share: random token sequences, a sequence's logits from a full forward pass, and the bound
// within which two computations of the same logits must agree.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

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

// The logits of a full forward with n OpenMP threads (the setting is restored).
inline std::vector<float> logits_with_threads(Model& m, const std::vector<int32_t>& tokens, int n) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(n);
  auto out = full_logits(m, tokens);
  omp_set_num_threads(saved);
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

// Three sequences of different lengths run as one batch give each the logits it gets alone.
inline void expect_batch_equals_each_alone(Model& m) {
  const ModelConfig& c = m.config();
  std::vector<std::vector<int32_t>> seqs = {random_tokens(13, c.vocab, 7), random_tokens(31, c.vocab, 8),
                                             random_tokens(1, c.vocab, 9)};
  Batch b;
  for (auto& s : seqs) b.add(s);
  std::vector<float> all(b.tokens.size() * size_t(c.vocab));
  m.forward(b, all.data());
  size_t row = 0;
  for (auto& s : seqs) {
    auto alone = full_logits(m, s);
    expect_close(all.data() + row * c.vocab, alone.data(), alone.size(), c, "sequence in a batch");
    row += s.size();
  }
}

}  // namespace unmask::test
