// The forward pass: embedding, n_layers × (RMSNorm, attention, residual, RMSNorm, SwiGLU or a mixture of SwiGLU
// experts, residual), final norm and the output projection for the rows a caller reads.
#include <algorithm>
#include <cmath>

#include "unmask/base/error.h"
#include "unmask/kernels/activations.h"
#include "unmask/kernels/embedding.h"
#include "unmask/kernels/norm.h"
#include "unmask/kernels/rope.h"
#include "unmask/model/model.h"
#include "unmask/model/scratch.h"

namespace unmask {

KeySpan visible_keys(MaskKind mask, int block, int pos, int n_keys) {
  int end = n_keys;
  if (mask == MaskKind::kCausal) end = std::min(pos + 1, n_keys);
  if (mask == MaskKind::kBlockCausal) end = std::min((pos / block + 1) * block, n_keys);
  return {0, end, 0, 0};
}

void TrainBatch::add(std::span<const int32_t> seq, MaskKind mask, int block) {
  const int n = int(seq.size());
  tokens.insert(tokens.end(), seq.begin(), seq.end());
  for (int i = 0; i < n; ++i) {
    pos.push_back(i);
    spans.push_back(visible_keys(mask, block, i, n));
  }
  seq_begin.push_back(int32_t(tokens.size()));
}

namespace {

// x (n) += y (n)
void add_inplace(float* x, const float* y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= 32768)
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace

void Model::forward(const Batch& batch, float* logits, std::span<const int32_t> rows) {
  forward_batch(batch, logits, rows, nullptr);
}

void Model::forward_hidden(const Batch& batch, float* hidden) { forward_batch(batch, nullptr, {}, hidden); }

void Model::forward_batch(const Batch& batch, float* logits, std::span<const int32_t> rows, float* hidden) {
  check(batch.size() > 0, "forward: the batch is empty");
  std::vector<Segment> segs;
  std::vector<int32_t> pos(batch.tokens.size());
  for (int b = 0; b < batch.size(); ++b) {
    int row0 = batch.begin[size_t(b)], n = batch.begin[size_t(b) + 1] - row0;
    check(n > 0 && n <= cfg_.ctx, "forward: sequence {} has {} tokens, expected 1 to {} (the model's context)", b, n,
          cfg_.ctx);
    for (int i = 0; i < n; ++i) pos[size_t(row0 + i)] = i;
    segs.push_back({row0, n, row0, n});
  }
  check_tokens(batch.tokens);
  run(batch.tokens, pos, segs, nullptr, 0, logits, rows, hidden);
}

std::vector<int32_t> Model::continuing(const KVCache& cache, int n) const {
  const int len = cache.size();
  check(n > 0, "forward: no tokens to run");
  check(len + n <= cache.capacity() && len + n <= cfg_.ctx,
        "forward: {} cached + {} new positions exceed the cache ({}) or the model's context ({})", len, n,
        cache.capacity(), cfg_.ctx);
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) pos[size_t(i)] = len + i;
  return pos;
}

void Model::forward_cached(KVCache& cache, std::span<const int32_t> tokens, float* logits,
                           std::span<const int32_t> rows, bool commit) {
  const int n = int(tokens.size()), len = cache.size();
  const std::vector<int32_t> pos = continuing(cache, n);
  check_tokens(tokens);
  const Segment seg{0, n, 0, len + n};
  run(tokens, pos, {&seg, 1}, &cache, len, logits, rows);
  if (commit) cache.advance(n);
}

void Model::forward_cached_batch(std::span<KVCache* const> caches, std::span<const std::span<const int32_t>> tokens,
                                 std::span<const char> commit, float* logits, std::span<const int32_t> rows) {
  check(!caches.empty() && caches.size() == tokens.size() && caches.size() == commit.size(),
        "forward_cached_batch: {} caches, {} token spans, {} commit flags", caches.size(), tokens.size(),
        commit.size());
  std::vector<int32_t> all, pos;
  std::vector<Segment> segs;
  for (size_t i = 0; i < caches.size(); ++i) {
    KVCache& c = *caches[i];
    const int n = int(tokens[i].size()), len = c.size();
    const std::vector<int32_t> p = continuing(c, n);
    pos.insert(pos.end(), p.begin(), p.end());
    segs.push_back({int(all.size()), n, 0, len + n, &c, len});
    all.insert(all.end(), tokens[i].begin(), tokens[i].end());
  }
  check_tokens(all);
  run(all, pos, segs, nullptr, 0, logits, rows);
  for (size_t i = 0; i < caches.size(); ++i)
    if (commit[i]) caches[i]->advance(int(tokens[i].size()));
}

void Model::forward_draft(KVCache& cache, std::span<const int32_t> tokens, int from, float* logits,
                          std::span<const int32_t> rows) {
  const int n = int(tokens.size()), len = cache.size();
  check(cfg_.draft_block > 0 || from == n, "forward_draft: the model ({}) was not trained to draft (objective joint)",
        cfg_.arch);
  check(from >= 0 && from <= n, "forward_draft: rows [{}, {}) are not a draft block of {} rows", from, n, n);
  const std::vector<int32_t> pos = continuing(cache, n);
  check_tokens(tokens);
  const Segment seg{0, n, 0, len + n};
  rows_alone_ = true;  // (reset however run returns)
  struct Reset {
    bool& flag;
    ~Reset() { flag = false; }
  } reset{rows_alone_};
  run(tokens, pos, {&seg, 1}, &cache, len, logits, rows, nullptr, from);
}

void Model::forward_window(KVCache& cache, int begin, std::span<const int32_t> tokens, float* logits,
                           std::span<const int32_t> rows) {
  const int n = int(tokens.size());
  check(n > 0 && begin >= 0 && begin + n <= cache.size(),
        "forward_window: positions [{}, {}) are not inside the {} cached positions", begin, begin + n, cache.size());
  check_tokens(tokens);
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) pos[size_t(i)] = begin + i;
  const Segment seg{0, n, 0, cache.size()};
  run(tokens, pos, {&seg, 1}, &cache, begin, logits, rows);
}

void Model::run(std::span<const int32_t> tokens, std::span<const int32_t> pos, std::span<const Segment> segs,
                KVCache* cache, int first_row, float* logits, std::span<const int32_t> rows, float* hidden,
                int draft_from) {
  const int N = int(tokens.size()), C = cfg_.d_model, Q = cfg_.q_dim(), KV = cfg_.kv_dim(), F = cfg_.ffn;
  Scratch& s = *s_;
  KeySpan* spans = fit(s.spans, size_t(N));
  for (const Segment& g : segs)
    for (int i = g.row0; i < g.row0 + g.n; ++i)
      spans[i] = i - g.row0 >= draft_from ? KeySpan{0, g.n_keys, 0, 0}
                                          : visible_keys(cfg_.mask, cfg_.block_size, pos[size_t(i)], g.n_keys);
  reserve_rope(pos);
  const TensorView& emb = w_.get().token_embd;
  LayerBufs b;
  b.x = fit(s.x, size_t(N) * C);
  embedding_forward(b.x, tokens.data(), N, emb.data, emb.dtype, cfg_.vocab, C);
  b.h = b.h2 = fit(s.h, size_t(N) * C);
  b.qkv = b.gu = fit(s.wide, size_t(N) * std::max(Q + 2 * KV, 2 * F));
  b.q = fit(s.q, size_t(N) * Q);
  b.att = fit(s.att, size_t(N) * Q);
  b.act = fit(s.act, size_t(N) * F);
  b.tmp = fit(s.tmp, size_t(N) * C);
  b.first = size_t(first_row) * KV;
  for (int l = 0; l < cfg_.n_layers; ++l) {
    // K/V go straight into the cache after its final positions, or into scratch for a cache-less pass.
    const bool own = segs.front().cache != nullptr;  // each segment's K/V in its own cache: no shared buffer
    b.k = own ? nullptr : cache ? cache->k(l) : fit(s.k, size_t(N) * KV);
    b.v = own ? nullptr : cache ? cache->v(l) : fit(s.v, size_t(N) * KV);
    layer_forward(l, N, pos.data(), spans, segs, b);
  }
  const int R = rows.empty() ? N : int(rows.size());
  logits_forward(b.x, N, rows, hidden ? hidden : fit(s.hr, size_t(R) * C), nullptr, logits);
}

void Model::reserve_rope(std::span<const int32_t> pos) {
  if (!pos.empty()) rope_.reserve(*std::max_element(pos.begin(), pos.end()) + 1);
}

// The final RMSNorm and output projection for the selected rows of the residual stream x (N, C):
// hr (R, C) <- normed rows, rstd (R) if kept, logits (R, V).
void Model::logits_forward(const float* x, int N, std::span<const int32_t> rows, float* hr, float* rstd,
                           float* logits) {
  const int C = cfg_.d_model, R = rows.empty() ? N : int(rows.size());
  for (int r = 0; r < R; ++r) {
    int src = rows.empty() ? r : rows[size_t(r)];
    check(src >= 0 && src < N, "forward: logits row {} is outside the {} rows of the call", src, N);
    std::copy_n(x + size_t(src) * C, C, hr + size_t(r) * C);
  }
  rmsnorm_forward(hr, rstd, hr, w_.get().output_norm.f32(), R, C, cfg_.norm_eps);
  if (logits) out_.forward(logits, hr, R);
}

namespace {

// qkv (N, Q + 2 KV) -> q (N, Q), k (N, KV), v (N, KV): the fused projection's columns, split.
void split_qkv(float* q, float* k, float* v, const float* qkv, int N, int Q, int KV) {
  const int W = Q + 2 * KV;
#pragma omp parallel for schedule(static) if (int64_t(N) * W >= 65536)
  for (int i = 0; i < N; ++i) {
    const float* row = qkv + int64_t(i) * W;
    std::copy_n(row, Q, q + int64_t(i) * Q);
    std::copy_n(row + Q, KV, k + int64_t(i) * KV);
    std::copy_n(row + Q + KV, KV, v + int64_t(i) * KV);
  }
}

// gu (N, 2F) = [gate | up] per row -> out (N, F) = silu(gate) · up.
void swiglu_rows(float* out, const float* gu, int N, int F) {
#pragma omp parallel for schedule(static) if (int64_t(N) * F >= 65536)
  for (int i = 0; i < N; ++i) swiglu_forward(out + int64_t(i) * F, gu + int64_t(i) * 2 * F, gu + int64_t(i) * 2 * F + F, F);
}

}  // namespace

// x (N, C), the residual stream, goes through one layer in place; b says where the activations go.
void Model::layer_forward(int l, int N, const int32_t* pos, const KeySpan* spans, std::span<const Segment> segs,
                          const LayerBufs& b) {
  const int C = cfg_.d_model, Q = cfg_.q_dim(), KV = cfg_.kv_dim(), F = cfg_.ffn, D = cfg_.head_dim;
  const LayerWeights& W = w_.get().layers[size_t(l)];
  LayerLinears& L = lin_[size_t(l)];
  float* x = b.x;
  if (b.x_in) std::copy_n(x, size_t(N) * C, b.x_in);

  rmsnorm_forward(b.h, b.rstd1, x, W.attn_norm.f32(), N, C, cfg_.norm_eps);
  L.qkv.forward(b.qkv, b.h, N, L.qkv_b);
  // Keys and values: this call's rows in one buffer (b.k + b.first), or each segment's in its own cache.
  const bool own = segs.front().cache != nullptr;
  auto keys = [&](const Segment& g) { return own ? g.cache->k(l) : b.k; };
  auto values = [&](const Segment& g) { return own ? g.cache->v(l) : b.v; };
  auto new_rows = [&](const Segment& g) { return size_t(own ? g.first : g.row0) * KV + (own ? 0 : b.first); };
  for (const Segment& g : segs)
    split_qkv(b.q + size_t(g.row0) * Q, keys(g) + new_rows(g), values(g) + new_rows(g),
              b.qkv + size_t(g.row0) * (Q + 2 * KV), g.n, Q, KV);
  if (cfg_.qk_norm) {  // each head of q (N·Hq, D) and of k (N·Hkv, D) normed on its own
    rmsnorm_forward(b.q, nullptr, b.q, W.q_norm.f32(), N * cfg_.n_heads, D, cfg_.norm_eps);
    for (const Segment& g : segs)
      rmsnorm_forward(keys(g) + new_rows(g), nullptr, keys(g) + new_rows(g), W.k_norm.f32(), g.n * cfg_.n_kv_heads,
                      D, cfg_.norm_eps);
  }
  rope_.apply(b.q, pos, N, cfg_.n_heads, cfg_.rope);
  for (const Segment& g : segs) rope_.apply(keys(g) + new_rows(g), pos + g.row0, g.n, cfg_.n_kv_heads, cfg_.rope);
  const float scale = 1.0f / std::sqrt(float(D));
  // bf16 weights: attention in bf16 as well (products and P·V through AVX512-BF16, f32 softmax). A draft pass:
  // every row as a decode step computes it (attention_forward_rows), so verified rows are AR's bits.
  const auto attend = rows_alone_                    ? attention_forward_rows
                      : cfg_.wtype == DType::BF16 ? attention_forward_bf16
                                                  : attention_forward;
  for (const Segment& g : segs)
    attend(b.att + size_t(g.row0) * Q, b.lse ? b.lse + size_t(g.row0) * cfg_.n_heads : nullptr,
           b.q + size_t(g.row0) * Q, keys(g) + size_t(g.key0) * KV, values(g) + size_t(g.key0) * KV, spans + g.row0,
           g.n, g.n_keys, cfg_.n_heads, cfg_.n_kv_heads, D, scale);
  L.o.forward(b.tmp, b.att, N);
  add_inplace(x, b.tmp, int64_t(N) * C);
  if (b.x_mid) std::copy_n(x, size_t(N) * C, b.x_mid);

  rmsnorm_forward(b.h2, b.rstd2, x, W.ffn_norm.f32(), N, C, cfg_.norm_eps);
  if (cfg_.n_experts > 0) {
    moe_forward(l, N, b.h2, b.tmp);
  } else {
    L.gate_up.forward(b.gu, b.h2, N);
    swiglu_rows(b.act, b.gu, N, F);
    L.down.forward(b.tmp, b.act, N);
  }
  add_inplace(x, b.tmp, int64_t(N) * C);
}

}  // namespace unmask
