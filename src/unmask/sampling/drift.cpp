#include "unmask/sampling/drift.h"

#include <algorithm>
#include <cmath>

namespace unmask {

void DriftProbe::truncate(int n) {
  in_.truncate(n);
  cached_tokens_.resize(size_t(n));
}

void DriftProbe::forward_cached(std::span<const int32_t> tokens, float* logits, std::span<const int32_t> rows,
                                bool commit) {
  in_.forward_cached(tokens, logits, rows, commit);
  const int base = int(cached_tokens_.size());
  std::vector<int32_t> seq(cached_tokens_);
  seq.insert(seq.end(), tokens.begin(), tokens.end());
  if (commit) {
    cached_tokens_ = seq;
    return;
  }
  compare(seq, base, logits, rows);
}

void DriftProbe::forward_window(int begin, std::span<const int32_t> tokens, float* logits,
                                std::span<const int32_t> rows) {
  in_.forward_window(begin, tokens, logits, rows);
  std::vector<int32_t> seq(cached_tokens_);
  std::copy(tokens.begin(), tokens.end(), seq.begin() + begin);
  compare(seq, begin, logits, rows);
}

void DriftProbe::compare(const std::vector<int32_t>& seq, int base, const float* logits,
                         std::span<const int32_t> rows) {
  const int V = config().vocab;
  std::vector<int32_t> full_rows;
  for (int32_t r : rows) full_rows.push_back(base + r);
  Batch b;
  b.add(seq);
  exact_logits_.resize(full_rows.size() * size_t(V));
  exact_.forward(b, exact_logits_.data(), full_rows);
  double sum = 0;
  for (size_t i = 0; i < full_rows.size(); ++i) {
    const float* a = logits + i * size_t(V);
    const float* e = exact_logits_.data() + i * size_t(V);
    double row_max = 0;
    for (int v = 0; v < V; ++v) row_max = std::max(row_max, double(std::fabs(a[v] - e[v])));
    s_.max_abs = std::max(s_.max_abs, row_max);
    sum += row_max;
    s_.argmax_changed += std::max_element(a, a + V) - a != std::max_element(e, e + V) - e;
  }
  s_.mean_max_abs = (s_.mean_max_abs * double(s_.rows) + sum) / double(s_.rows + int64_t(full_rows.size()));
  s_.rows += int64_t(full_rows.size());
  s_.compared_calls += 1;
}

}  // namespace unmask
