// The transformer: one forward pass for causal, bidirectional and block-causal models, over a batch of
// independent sequences or over a span that continues a KV-cached prefix.
#pragma once

#include <cstdint>
#include <memory>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "unmask/base/zeroed.h"
#include "unmask/kernels/attention.h"
#include "unmask/kernels/gemm.h"
#include "unmask/kernels/rope.h"
#include "unmask/model/config.h"
#include "unmask/model/weights.h"

namespace unmask {

namespace gguf {
class Writer;
}

// Keys and values of every layer for one sequence: k, v (capacity, kv_dim) per layer. Positions [0, size()) are
// final; a forward over a span writes the span's K/V after them and, when committed, extends size().
class KVCache {
 public:
  KVCache() = default;
  KVCache(const ModelConfig& c, int capacity);
  int size() const { return len_; }
  int capacity() const { return cap_; }
  void truncate(int n);  // keep the first n positions; n <= size()
  void clear() { len_ = 0; }
  float* k(int layer) { return k_.data() + size_t(layer) * size_t(cap_) * size_t(kv_dim_); }
  float* v(int layer) { return v_.data() + size_t(layer) * size_t(cap_) * size_t(kv_dim_); }
  void advance(int n);

 private:
  ZeroedVector<float> k_, v_;  // the whole capacity, paid for as positions are reached
  int kv_dim_ = 0, cap_ = 0, len_ = 0;
};

// B sequences, their tokens concatenated.
struct Batch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> begin{0};  // B+1 offsets into tokens
  void add(std::span<const int32_t> seq);
  int size() const { return int(begin.size()) - 1; }
};

// A training batch: the rows of several sequences, with the keys each row may see given explicitly, so that an
// objective can build its own mask (BD3-LM's x_t ⊕ x_0). Spans index keys within the row's own sequence.
struct TrainBatch {
  std::vector<int32_t> tokens;         // (N)
  std::vector<int32_t> pos;            // (N) RoPE positions
  std::vector<KeySpan> spans;          // (N)
  std::vector<int32_t> seq_begin{0};   // B+1 offsets into the rows
  std::vector<int32_t> rows;           // rows whose logits are computed, in this order (all when empty)
  // Appends a sequence whose rows see keys by the mask kind, at positions 0 .. n-1.
  void add(std::span<const int32_t> seq, MaskKind mask, int block = 0);
};

// Keys [0, n_keys) at positions 0 .. n_keys-1: the ones a query at position pos may see under the mask kind.
KeySpan visible_keys(MaskKind mask, int block, int pos, int n_keys);

class Model {
 public:
  // Opens a GGUF file or a Hugging Face checkpoint folder (config.json + safetensors); weights stay
  // memory-mapped. Throws Error naming the file and what was wrong.
  static Model load(const std::string& path);
  static Model random(const ModelConfig& c, uint64_t seed);
  static Model from_weights(ModelConfig c, ModelWeights w);
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }

  // Adds the configuration and every tensor to w (the caller may add more metadata, a tokenizer), or writes a file.
  void add_to(gguf::Writer& w) const;
  void save(const std::string& path) const;

  // Logits (R, V) for rows R of batch.tokens (all rows when rows is empty); row i is computed from hidden state i
  // (no shifting). Each sequence attends within itself with the model's mask kind, from position 0.
  void forward(const Batch& batch, float* logits, std::span<const int32_t> rows = {});
  // As forward, but the final-normed hidden states (N, d_model) of every row, the vectors the output projection reads
  // (features of a text for evaluation: MAUVE in eval/quality.h); no logits are computed.
  void forward_hidden(const Batch& batch, float* hidden);
  // tokens (n) continue the sequence cached in `cache` at positions cache.size() ... cache.size() + n - 1.
  // Logits (R, V) for rows R of the span (all when empty). commit: keep the span's K/V (the cache grows by n);
  // otherwise the cache keeps its size (a block being denoised is run again later).
  void forward_cached(KVCache& cache, std::span<const int32_t> tokens, float* logits,
                      std::span<const int32_t> rows = {}, bool commit = true);

  // tokens (n) replace positions [begin, begin + n) of a cache that holds the whole sequence (begin + n <=
  // cache.size()): their K/V are recomputed in place and their queries attend to every cached position under the
  // model's mask. Fast-dLLM's dual cache: the block being denoised is rerun against the cached prefix and suffix.
  // forward_cached for several caches in one pass (one read of the weights): tokens[i] continue caches[i]; logits
  // (R, V) for rows R of the tokens concatenated (all when empty); caches[i] keeps its span when commit[i]. Each
  // row's logits are those forward_cached gives it alone (the continuous batch's AR steps).
  void forward_cached_batch(std::span<KVCache* const> caches, std::span<const std::span<const int32_t>> tokens,
                            std::span<const char> commit, float* logits, std::span<const int32_t> rows = {});

  // A joint model's pass (config().draft_block > 0): tokens (n) continue the cached sequence; rows [0, from) are causal
  // (their K/V are AR's), rows [from, n) a draft block that sees the cache and every row of the call. The cache does
  // not grow: cache.advance(k) afterwards keeps the first k rows' K/V (k <= from). Any causal model may run one with
  // from = n (no draft rows): the verification of another model's drafts.
  void forward_draft(KVCache& cache, std::span<const int32_t> tokens, int from, float* logits,
                     std::span<const int32_t> rows = {});

  void forward_window(KVCache& cache, int begin, std::span<const int32_t> tokens, float* logits,
                      std::span<const int32_t> rows = {});

  KVCache make_cache(int capacity = 0) const;  // capacity 0: the model's context

  // Training (owned f32 weights only: Model::random, or to_trainable(); not models with q/k norms or experts,
  // which have no backward pass: those calls throw). forward_train computes logits
  // (rows, V) and keeps the activations; backward takes dlogits (rows, V) and ACCUMULATES the gradient of every
  // parameter into grads, a flat buffer laid out as params().
  void forward_train(const TrainBatch& b, float* logits);
  void backward(const TrainBatch& b, const float* dlogits, float* grads);
  // Frees the inference scratch, which keeps the size of the largest call so far, and every GEMM's primitives and
  // packed weight copies except those of the `keep_rows` row counts run most often since the last release (an idle
  // server gives the memory back; a later call with another row count builds its primitive again).
  void release_scratch(int keep_rows = 2);
  std::span<float> params();
  // After the parameters changed (an optimizer step, a checkpoint load): refresh the GEMMs' packed weights.
  void params_changed();
  // A copy of a loaded (memory-mapped, any plain type) model with owned f32 weights, ready to train.
  Model to_trainable() const;
  // Mixed precision from now on: the forward and backward GEMMs read bf16 copies of the weight matrices (refreshed
  // from the f32 master by params_changed()) and bf16-rounded activations, accumulating in f32; gradients stay f32.
  void train_in_bf16();

 private:
  struct Segment;    // a run of query rows that attend to one key range
  struct Scratch;
  struct LayerBufs;  // where one layer's activations go
  struct TrainActs;  // every layer's activations, kept for the backward pass
  Model(ModelConfig c, ModelWeights w);
  void prepare();
  // A weight matrix (OC, IC) of any type: oneDNN's prepacked copy for f32/bf16 when prepack_, else read in place.
  Linear matrix_linear(const void* data, DType t, int oc, int ic) const;
  Linear matrix_linear(const TensorView& w) const {  // stored with ne = {IC, OC}
    return matrix_linear(w.data, w.dtype, int(w.ne[1]), int(w.ne[0]));
  }
  // cache: K/V of the rows are written at cache positions first_row ... hidden: the final-normed rows (R, C) go
  // there, and logits may be null (then none are computed).
  // draft_from: rows from this index on see every key of their segment (a draft block), the others the model's mask.
  void run(std::span<const int32_t> tokens, std::span<const int32_t> pos, std::span<const Segment> segs,
           KVCache* cache, int first_row, float* logits, std::span<const int32_t> rows, float* hidden = nullptr,
           int draft_from = std::numeric_limits<int>::max());
  void forward_batch(const Batch& batch, float* logits, std::span<const int32_t> rows, float* hidden);
  void layer_forward(int l, int N, const int32_t* pos, const KeySpan* spans, std::span<const Segment> segs,
                     const LayerBufs& b);
  void logits_forward(const float* x, int N, std::span<const int32_t> rows, float* hr, float* rstd, float* logits);
  void reserve_rope(std::span<const int32_t> pos);  // the RoPE table covers every position of pos
  // The positions of n tokens that continue the cache; throws when they do not fit it or the context.
  std::vector<int32_t> continuing(const KVCache& cache, int n) const;
  void layer_backward(int l, int N, const int32_t* pos, const KeySpan* spans, std::span<const Segment> segs,
                      float* dx, float* grads);
  // The mixture-of-experts FFN of layer l: h (N, C) -> out (N, C).
  void moe_forward(int l, int N, const float* h, float* out);
  void prepare_experts(size_t l);  // the expert Linears and router of layer l
  void check_tokens(std::span<const int32_t> tokens) const;
  void check_trainable() const;  // throws for architectures without a backward pass
  static std::vector<Segment> segments_of(const TrainBatch& tb);

  ModelConfig cfg_;
  ModelWeights w_;
  // One GEMM for q, k and v, one for gate and up: their weights stacked row-wise into buffers the model owns.
  // Where the parts already lie back to back in memory (our own flat buffer) the Linear reads them in place, and
  // training updates them there; otherwise (a mapped file) they are copied into the buffers here.
  struct LayerLinears {
    Linear qkv, o, gate_up, down;
    const float* qkv_w = nullptr;      // (Q + 2 KV, C) f32 when trainable
    const float* gate_up_w = nullptr;  // (2F, C)
    const float* qkv_b = nullptr;      // (Q + 2 KV) when the model has q/k/v biases
    std::vector<uint8_t> qkv_copy, gate_up_copy;
    std::vector<float> qkv_b_copy;
    std::vector<uint16_t> qkv16, o16, gate_up16, down16;  // bf16 copies when training in bf16
    // Mixture of experts: per expert, a Linear over its (FE, C) slice of gate_exps and up_exps and its (C, FE)
    // slice of down_exps, read in place (whatever their type); the router as f32 (E, C).
    std::vector<Linear> gate_e, up_e, down_e;
    const float* router = nullptr;
    std::vector<float> router_copy;  // when the file stores the router in another type
  };
  // Calls f(linear, bf16 copy, f32 master, OC, IC) for every weight GEMM.
  template <typename F>
  void for_each_gemm(F&& f);
  std::vector<LayerLinears> lin_;
  Linear out_;
  std::vector<uint16_t> out16_;
  bool bf16_ = false;
  // f32/bf16 matrices through oneDNN's prepacked copies (fast, but a mapped file's weights then take twice their
  // size in memory) — unless the model is mapped and the copies would not fit comfortably (copies_fit()).
  bool prepack_ = true;
  bool repack_ = true;       // quantized matrices repacked for the int8 tiles (copies_fit())
  bool rows_alone_ = false;  // during forward_draft: attention row by row (attention_forward_rows)
  RopeTable rope_;  // cos/sin of the positions run so far (reserve_rope)
  std::unique_ptr<Scratch> s_;
  std::unique_ptr<TrainActs> t_;
};

}  // namespace unmask
