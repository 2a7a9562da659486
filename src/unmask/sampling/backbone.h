// What a sampler needs from a model: logits for chosen rows of whole sequences, and of spans that continue a cached
// prefix. ModelBackbone runs the transformer; tests give hand-built logits through the same interface.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/model/config.h"
#include "unmask/model/model.h"

namespace unmask {

class Backbone {
 public:
  virtual ~Backbone() = default;
  virtual const ModelConfig& config() const = 0;
  // Logits (R, V) for rows R of batch.tokens, each sequence on its own from position 0 (Model::forward).
  virtual void forward(const Batch& batch, float* logits, std::span<const int32_t> rows) = 0;
  // The one cache of this backbone: tokens (n) continue the cached positions; logits (R, V) for rows R of the span.
  // commit: the cache keeps the span (Model::forward_cached).
  virtual void forward_cached(std::span<const int32_t> tokens, float* logits, std::span<const int32_t> rows,
                              bool commit) = 0;
  // tokens (n) replace cached positions [begin, begin + n) and attend to every cached position (Model::forward_window:
  // the dual cache). Backbones without one refuse.
  virtual void forward_window(int begin, std::span<const int32_t> tokens, float* logits,
                              std::span<const int32_t> rows) {
    fail("this backbone has no window pass over a cached sequence (--cache dual)");
  }
  // A joint model's pass (Model::forward_draft): tokens (n) continue the cache, rows [from, n) a draft block; the cache
  // does not grow until advance(k) keeps the first k rows' K/V. Backbones without one refuse.
  virtual void forward_draft(std::span<const int32_t> tokens, int from, float* logits, std::span<const int32_t> rows) {
    fail("this backbone cannot draft (a joint model's draft block)");
  }
  virtual void advance(int n) { fail("this backbone cannot keep part of a draft pass"); }
  virtual int cached() const = 0;       // positions held by the cache
  virtual void truncate(int n) = 0;     // keep the first n cached positions
};

class ModelBackbone : public Backbone {
 public:
  explicit ModelBackbone(Model& m, int cache_capacity = 0) : m_(m), cache_capacity_(cache_capacity) {}
  const ModelConfig& config() const override { return m_.config(); }
  void forward(const Batch& batch, float* logits, std::span<const int32_t> rows) override {
    m_.forward(batch, logits, rows);
  }
  void forward_cached(std::span<const int32_t> tokens, float* logits, std::span<const int32_t> rows,
                      bool commit) override;
  void forward_window(int begin, std::span<const int32_t> tokens, float* logits,
                      std::span<const int32_t> rows) override {
    m_.forward_window(cache_, begin, tokens, logits, rows);
  }
  void forward_draft(std::span<const int32_t> tokens, int from, float* logits,
                     std::span<const int32_t> rows) override;
  void advance(int n) override { cache_.advance(n); }
  int cached() const override { return cache_.size(); }
  void truncate(int n) override { cache_.truncate(n); }
  KVCache& cache();  // the one cache, made on first use

 private:
  Model& m_;
  int cache_capacity_;
  KVCache cache_;
  bool has_cache_ = false;
};

}  // namespace unmask
