// The forward pass: embedding, n_layers × (RMSNorm, attention, residual, RMSNorm, SwiGLU, residual), final norm and
// the output projection for the rows a caller reads.
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

namespace {

// Keys [0, n_keys) are at positions 0 .. n_keys-1; which of them may a query at position pos see?
KeySpan visible_keys(MaskKind mask, int block, int pos, int n_keys) {
  int end = n_keys;
  if (mask == MaskKind::kCausal) end = std::min(pos + 1, n_keys);
  if (mask == MaskKind::kBlockCausal) end = std::min((pos / block + 1) * block, n_keys);
  return {0, end, 0, 0};
}

// x (n) += y (n)
void add_inplace(float* x, const float* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace

void Model::forward(const Batch& batch, float* logits, std::span<const int32_t> rows) {
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
  run(batch.tokens, pos, segs, nullptr, logits, rows);
}

void Model::forward_cached(KVCache& cache, std::span<const int32_t> tokens, float* logits,
                           std::span<const int32_t> rows, bool commit) {
  const int n = int(tokens.size()), len = cache.size();
  check(n > 0, "forward: no tokens to run");
  check(len + n <= cache.capacity() && len + n <= cfg_.ctx,
        "forward: {} cached + {} new positions exceed the cache ({}) or the model's context ({})", len, n,
        cache.capacity(), cfg_.ctx);
  check_tokens(tokens);
  std::vector<int32_t> pos(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) pos[size_t(i)] = len + i;
  const Segment seg{0, n, 0, len + n};
  run(tokens, pos, {&seg, 1}, &cache, logits, rows);
  if (commit) cache.advance(n);
}

void Model::run(std::span<const int32_t> tokens, std::span<const int32_t> pos, std::span<const Segment> segs,
                KVCache* cache, float* logits, std::span<const int32_t> rows) {
  const int N = int(tokens.size()), C = cfg_.d_model;
  Scratch& s = *s_;
  KeySpan* spans = Scratch::fit(s.spans, size_t(N));
  for (const Segment& g : segs)
    for (int i = g.row0; i < g.row0 + g.n; ++i)
      spans[i] = visible_keys(cfg_.mask, cfg_.block_size, pos[size_t(i)], g.n_keys);
  const TensorView& emb = w_.get().token_embd;
  embedding_forward(Scratch::fit(s.x, size_t(N) * C), tokens.data(), N, emb.data, emb.dtype, cfg_.vocab, C);
  for (int l = 0; l < cfg_.n_layers; ++l) layer_forward(l, N, pos.data(), segs, cache);

  const int R = rows.empty() ? N : int(rows.size());
  float* hr = Scratch::fit(s.hr, size_t(R) * C);
  for (int r = 0; r < R; ++r) {
    int src = rows.empty() ? r : rows[size_t(r)];
    check(src >= 0 && src < N, "forward: logits row {} is outside the {} rows of the call", src, N);
    std::copy_n(s.x.data() + size_t(src) * C, C, hr + size_t(r) * C);
  }
  rmsnorm_forward(hr, nullptr, hr, w_.get().output_norm.f32(), R, C, cfg_.norm_eps);
  out_.forward(logits, hr, R);
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

void Model::layer_forward(int l, int N, const int32_t* pos, std::span<const Segment> segs, KVCache* cache) {
  const int C = cfg_.d_model, Q = cfg_.q_dim(), KV = cfg_.kv_dim(), F = cfg_.ffn, D = cfg_.head_dim;
  const LayerWeights& W = w_.get().layers[size_t(l)];
  LayerLinears& L = lin_[size_t(l)];
  Scratch& s = *s_;
  float* x = s.x.data();
  float* h = Scratch::fit(s.h, size_t(N) * C);
  float* q = Scratch::fit(s.q, size_t(N) * Q);
  // K/V go straight into the cache after its final positions, or into scratch for a cache-less pass.
  float* kbase = cache ? cache->k(l) : Scratch::fit(s.k, size_t(N) * KV);
  float* vbase = cache ? cache->v(l) : Scratch::fit(s.v, size_t(N) * KV);
  const size_t first = cache ? size_t(cache->size()) * KV : 0;

  rmsnorm_forward(h, nullptr, x, W.attn_norm.f32(), N, C, cfg_.norm_eps);
  float* wide = Scratch::fit(s.wide, size_t(N) * std::max(Q + 2 * KV, 2 * F));
  L.qkv.forward(wide, h, N, L.qkv_b.empty() ? nullptr : L.qkv_b.data());
  split_qkv(q, kbase + first, vbase + first, wide, N, Q, KV);
  rope_forward(q, pos, N, cfg_.n_heads, D, cfg_.rope, cfg_.rope_theta);
  rope_forward(kbase + first, pos, N, cfg_.n_kv_heads, D, cfg_.rope, cfg_.rope_theta);

  float* att = Scratch::fit(s.att, size_t(N) * Q);
  const float scale = 1.0f / std::sqrt(float(D));
  for (const Segment& g : segs)
    attention_forward(att + size_t(g.row0) * Q, nullptr, q + size_t(g.row0) * Q, kbase + size_t(g.key0) * KV,
                      vbase + size_t(g.key0) * KV, s.spans.data() + g.row0, g.n, g.n_keys, cfg_.n_heads,
                      cfg_.n_kv_heads, D, scale);
  float* tmp = Scratch::fit(s.tmp, size_t(N) * C);
  L.o.forward(tmp, att, N);
  add_inplace(x, tmp, int64_t(N) * C);

  rmsnorm_forward(h, nullptr, x, W.ffn_norm.f32(), N, C, cfg_.norm_eps);
  float* act = Scratch::fit(s.act, size_t(N) * F);
  L.gate_up.forward(wide, h, N);
  swiglu_rows(act, wide, N, F);
  L.down.forward(tmp, act, N);
  add_inplace(x, tmp, int64_t(N) * C);
}

}  // namespace unmask
