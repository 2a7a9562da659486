// A backbone with hand-built logits: fn(sequence, row, out) writes the logits of one row of a sequence. The cached
// forward runs fn on the cached tokens followed by the span, so a cache is exact here by construction.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "unmask/sampling/backbone.h"

namespace unmask::testing {

class FakeBackbone : public Backbone {
 public:
  using Fn = std::function<void(std::span<const int32_t> seq, int row, float* out)>;
  FakeBackbone(ModelConfig c, Fn fn) : c_(std::move(c)), fn_(std::move(fn)) {}
  const ModelConfig& config() const override { return c_; }
  void forward(const Batch& b, float* logits, std::span<const int32_t> rows) override {
    ++calls;
    for (size_t i = 0; i < rows.size(); ++i) {
      int s = 0;
      while (rows[i] >= b.begin[size_t(s) + 1]) ++s;
      std::span<const int32_t> seq(b.tokens.data() + b.begin[size_t(s)], size_t(b.begin[size_t(s) + 1] - b.begin[size_t(s)]));
      fn_(seq, rows[i] - b.begin[size_t(s)], logits + i * size_t(c_.vocab));
    }
    if (b.size() > 0) seen.emplace_back(b.tokens.begin(), b.tokens.begin() + b.begin[1]);
  }
  void forward_cached(std::span<const int32_t> tokens, float* logits, std::span<const int32_t> rows,
                      bool commit) override {
    ++calls, ++cached_calls;
    std::vector<int32_t> seq(cached_);
    seq.insert(seq.end(), tokens.begin(), tokens.end());
    for (size_t i = 0; i < rows.size(); ++i) fn_(seq, int(cached_.size()) + rows[i], logits + i * size_t(c_.vocab));
    if (commit) cached_ = seq;
    span_sizes.push_back(int(tokens.size()));
  }
  // The rows of a draft pass see the whole call (fn reads any row's tokens); advance keeps the first n of it.
  void forward_draft(std::span<const int32_t> tokens, int from, float* logits, std::span<const int32_t> rows) override {
    ++calls, ++draft_calls;
    std::vector<int32_t> seq(cached_);
    seq.insert(seq.end(), tokens.begin(), tokens.end());
    for (size_t i = 0; i < rows.size(); ++i) fn_(seq, int(cached_.size()) + rows[i], logits + i * size_t(c_.vocab));
    pending_.assign(tokens.begin(), tokens.end());
  }
  void advance(int n) override { cached_.insert(cached_.end(), pending_.begin(), pending_.begin() + n); }
  int cached() const override { return int(cached_.size()); }
  void truncate(int n) override { cached_.resize(size_t(n)); }

  int calls = 0, cached_calls = 0, draft_calls = 0;
  std::vector<std::vector<int32_t>> seen;  // the first sequence of every full forward
  std::vector<int> span_sizes;             // tokens of every cached forward

 private:
  ModelConfig c_;
  Fn fn_;
  std::vector<int32_t> cached_, pending_;
};

// vocab 8, [MASK] = 7, EOS = 6, bidirectional, context 64.
inline ModelConfig fake_config(MaskKind mask = MaskKind::kBidirectional) {
  ModelConfig c;
  c.arch = "fake";
  c.vocab = 8, c.ctx = 64, c.mask = mask, c.mask_token = 7, c.eos_token = 6;
  return c;
}

}  // namespace unmask::testing
