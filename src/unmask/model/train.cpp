// Training: the forward pass that keeps every layer's activations, and the backward pass through them.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "unmask/base/error.h"
#include "unmask/kernels/activations.h"
#include "unmask/kernels/backward.h"
#include "unmask/kernels/embedding.h"
#include "unmask/model/model.h"
#include "unmask/model/scratch.h"
#include "unmask/tensor/dtype.h"

namespace unmask {

namespace {

float* zeroed(std::vector<float>& b, size_t n) {
  float* p = fit(b, n);
  std::fill_n(p, n, 0.0f);
  return p;
}

// dq (N, Q), dk (N, KV), dv (N, KV) -> dqkv (N, Q + 2 KV): the gradient of the fused projection's output.
void merge_qkv(float* dqkv, const float* dq, const float* dk, const float* dv, int N, int Q, int KV) {
  const int W = Q + 2 * KV;
#pragma omp parallel for schedule(static) if (int64_t(N) * W >= 65536)
  for (int i = 0; i < N; ++i) {
    float* row = dqkv + int64_t(i) * W;
    std::copy_n(dq + int64_t(i) * Q, Q, row);
    std::copy_n(dk + int64_t(i) * KV, KV, row + Q);
    std::copy_n(dv + int64_t(i) * KV, KV, row + Q + KV);
  }
}

// gu (N, 2F) = [gate | up], dact (N, F) -> dgu (N, 2F).
void swiglu_rows_backward(float* dgu, const float* dact, const float* gu, int N, int F) {
#pragma omp parallel for schedule(static) if (int64_t(N) * F >= 65536)
  for (int i = 0; i < N; ++i) {
    const float* g = gu + int64_t(i) * 2 * F;
    float* d = dgu + int64_t(i) * 2 * F;
    swiglu_backward(d, d + F, dact + int64_t(i) * F, g, g + F, F);
  }
}

// linear_backward through the f32 master w, or through its bf16 copy w16 when that is filled (training in bf16).
void gemm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                   const std::vector<uint16_t>& w16, int T, int OC, int IC) {
  if (w16.empty())
    linear_backward(dx, dw, db, dout, x, w, T, OC, IC);
  else
    linear_backward_bf16(dx, dw, db, dout, x, w16.data(), T, OC, IC);
}

}  // namespace

// Each sequence of a training batch attends within itself: its rows are its keys.
std::vector<Model::Segment> Model::segments_of(const TrainBatch& tb) {
  std::vector<Segment> segs;
  for (size_t s = 0; s + 1 < tb.seq_begin.size(); ++s) {
    int row0 = tb.seq_begin[s], n = tb.seq_begin[s + 1] - row0;
    segs.push_back({row0, n, row0, n});
  }
  return segs;
}

void Model::check_trainable() const {
  check(!cfg_.qk_norm && cfg_.n_experts == 0,
        "training {} models is not supported (q/k norms and experts have no backward pass yet)", cfg_.arch);
}

std::span<float> Model::params() {
  check_trainable();
  return w_.flat();
}

template <typename F>
void Model::for_each_gemm(F&& f) {
  const Weights& w = w_.get();
  for (size_t l = 0; l < lin_.size(); ++l) {
    LayerLinears& L = lin_[l];
    const LayerWeights& W = w.layers[l];
    const int C = cfg_.d_model, Q = cfg_.q_dim(), KV = cfg_.kv_dim(), ffn = cfg_.ffn;
    f(L.qkv, L.qkv16, L.qkv_w, Q + 2 * KV, C);
    f(L.o, L.o16, W.wo.f32(), C, Q);
    f(L.gate_up, L.gate_up16, L.gate_up_w, 2 * ffn, C);
    f(L.down, L.down16, W.w_down.f32(), C, ffn);
  }
  f(out_, out16_, w.output.f32(), cfg_.vocab, cfg_.d_model);
}

void Model::params_changed() {
  for_each_gemm([&](Linear& lin, std::vector<uint16_t>& copy, const float* master, int OC, int IC) {
    if (bf16_) from_f32(DType::BF16, master, copy.data(), int64_t(OC) * IC);
    lin.repack();
  });
}

void Model::train_in_bf16() {
  params();  // checks that the weights are owned f32
  if (bf16_) return;
  bf16_ = true;
  for_each_gemm([&](Linear& lin, std::vector<uint16_t>& copy, const float* master, int OC, int IC) {
    copy.resize(size_t(OC) * IC);
    from_f32(DType::BF16, master, copy.data(), int64_t(OC) * IC);
    lin = Linear(copy.data(), DType::BF16, OC, IC);
  });
}

Model Model::to_trainable() const {
  check_trainable();
  ModelConfig c = cfg_;
  c.wtype = DType::F32;
  return Model(c, w_.to_owned_f32(cfg_));
}

void Model::forward_train(const TrainBatch& tb, float* logits) {
  const int N = int(tb.tokens.size()), C = cfg_.d_model, Q = cfg_.q_dim(), KV = cfg_.kv_dim(), F = cfg_.ffn;
  check(N > 0 && tb.pos.size() == size_t(N) && tb.spans.size() == size_t(N) && tb.seq_begin.back() == N,
        "forward_train: a batch of {} tokens with {} positions, {} spans and sequences ending at {}", N,
        tb.pos.size(), tb.spans.size(), tb.seq_begin.back());
  check_tokens(tb.tokens);
  params();  // checks that the weights are owned f32
  for (const LayerLinears& L : lin_)
    check(L.qkv_copy.empty() && L.gate_up_copy.empty() && L.qkv_b_copy.empty(),
          "forward_train: the stacked projections are copies, so their gradients would not reach the parameters");
  if (!t_) t_ = std::make_unique<TrainActs>();
  TrainActs& a = *t_;
  a.layers.resize(size_t(cfg_.n_layers));
  const auto segs = segments_of(tb);
  LayerBufs b;
  b.x = fit(a.x, size_t(N) * C);
  b.qkv = fit(a.qkv, size_t(N) * (Q + 2 * KV));
  b.tmp = fit(a.tmp, size_t(N) * C);
  const TensorView& emb = w_.get().token_embd;
  embedding_forward(b.x, tb.tokens.data(), N, emb.data, emb.dtype, cfg_.vocab, C);
  reserve_rope(tb.pos);
  for (int l = 0; l < cfg_.n_layers; ++l) {
    TrainActs::Layer& A = a.layers[size_t(l)];
    b.x_in = fit(A.x_in, size_t(N) * C), b.h = fit(A.h, size_t(N) * C), b.rstd1 = fit(A.rstd1, size_t(N));
    b.q = fit(A.q, size_t(N) * Q), b.k = fit(A.k, size_t(N) * KV), b.v = fit(A.v, size_t(N) * KV);
    b.att = fit(A.att, size_t(N) * Q), b.lse = fit(A.lse, size_t(N) * cfg_.n_heads);
    b.x_mid = fit(A.x_mid, size_t(N) * C), b.h2 = fit(A.h2, size_t(N) * C), b.rstd2 = fit(A.rstd2, size_t(N));
    b.gu = fit(A.gu, size_t(N) * 2 * F), b.act = fit(A.act, size_t(N) * F);
    layer_forward(l, N, tb.pos.data(), tb.spans.data(), segs, b);
  }
  const size_t R = tb.rows.empty() ? size_t(N) : tb.rows.size();
  logits_forward(a.x.data(), N, tb.rows, fit(a.hr, R * C), fit(a.rstd_r, R), logits);
}

void Model::backward(const TrainBatch& tb, const float* dlogits, float* grads) {
  check_trainable();
  check(t_ != nullptr, "backward: no forward_train before it");
  TrainActs& a = *t_;
  const int N = int(tb.tokens.size()), C = cfg_.d_model, V = cfg_.vocab;
  const int R = tb.rows.empty() ? N : int(tb.rows.size());
  const Weights& w = w_.get();
  auto g = [&](const TensorView& t) { return grads + w_.offset_of(t); };

  // logits (R, V) = rmsnorm(x rows) · Woutᵀ
  float* dhr = fit(a.dhr, size_t(R) * C);
  gemm_backward(dhr, g(w.output), nullptr, dlogits, a.hr.data(), w.output.f32(), out16_, R, V, C);
  float* xr = fit(a.tmp, size_t(R) * C);
  for (int r = 0; r < R; ++r)
    std::copy_n(a.x.data() + size_t(tb.rows.empty() ? r : tb.rows[size_t(r)]) * C, C, xr + size_t(r) * C);
  float* dxr = zeroed(a.dh, size_t(R) * C);
  rmsnorm_backward(dxr, g(w.output_norm), dhr, xr, w.output_norm.f32(), a.rstd_r.data(), R, C, cfg_.norm_eps);
  float* dx = zeroed(a.dx, size_t(N) * C);
  for (int r = 0; r < R; ++r) {
    float* dst = dx + size_t(tb.rows.empty() ? r : tb.rows[size_t(r)]) * C;
    for (int j = 0; j < C; ++j) dst[j] += dxr[size_t(r) * C + j];
  }
  const auto segs = segments_of(tb);
  for (int l = cfg_.n_layers - 1; l >= 0; --l) layer_backward(l, N, tb.pos.data(), tb.spans.data(), segs, dx, grads);
  embedding_backward(g(w.token_embd), dx, tb.tokens.data(), N, V, C);
}

// dx (N, C), the gradient of the layer's output, becomes the gradient of its input; parameter gradients += grads.
void Model::layer_backward(int l, int N, const int32_t* pos, const KeySpan* spans, std::span<const Segment> segs,
                           float* dx, float* grads) {
  const int C = cfg_.d_model, Q = cfg_.q_dim(), KV = cfg_.kv_dim(), F = cfg_.ffn, D = cfg_.head_dim;
  const LayerWeights& W = w_.get().layers[size_t(l)];
  const LayerLinears& L = lin_[size_t(l)];
  TrainActs& a = *t_;
  const TrainActs::Layer& A = a.layers[size_t(l)];
  auto g = [&](const TensorView& t) { return grads + w_.offset_of(t); };

  // FFN: x_out = x_mid + down(swiglu(h2 · Wguᵀ)), h2 = rmsnorm(x_mid)
  float* dact = fit(a.dact, size_t(N) * F);
  gemm_backward(dact, g(W.w_down), nullptr, dx, A.act.data(), W.w_down.f32(), L.down16, N, C, F);
  float* dgu = fit(a.dgu, size_t(N) * 2 * F);
  swiglu_rows_backward(dgu, dact, A.gu.data(), N, F);
  float* dh = fit(a.dh, size_t(N) * C);
  gemm_backward(dh, g(W.w_gate), nullptr, dgu, A.h2.data(), L.gate_up_w, L.gate_up16, N, 2 * F, C);
  rmsnorm_backward(dx, g(W.ffn_norm), dh, A.x_mid.data(), W.ffn_norm.f32(), A.rstd2.data(), N, C, cfg_.norm_eps);

  // Attention: x_mid = x_in + o(attention(rope(q), rope(k), v)), [q k v] = h · Wqkvᵀ + b, h = rmsnorm(x_in)
  float* datt = fit(a.datt, size_t(N) * Q);
  gemm_backward(datt, g(W.wo), nullptr, dx, A.att.data(), W.wo.f32(), L.o16, N, C, Q);
  float* dq = fit(a.dq, size_t(N) * Q);
  float* dk = zeroed(a.dk, size_t(N) * KV);
  float* dv = zeroed(a.dv, size_t(N) * KV);
  const float scale = 1.0f / std::sqrt(float(D));
  for (const Segment& s : segs) {
    size_t q0 = size_t(s.row0) * Q, k0 = size_t(s.key0) * KV;
    attention_backward(dq + q0, dk + k0, dv + k0, datt + q0, A.q.data() + q0, A.k.data() + k0, A.v.data() + k0,
                       A.att.data() + q0, A.lse.data() + size_t(s.row0) * cfg_.n_heads, spans + s.row0, s.n,
                       s.n_keys, cfg_.n_heads, cfg_.n_kv_heads, D, scale);
  }
  rope_backward(dq, pos, N, cfg_.n_heads, D, cfg_.rope, cfg_.rope_theta);
  rope_backward(dk, pos, N, cfg_.n_kv_heads, D, cfg_.rope, cfg_.rope_theta);
  float* dqkv = fit(a.dqkv, size_t(N) * (Q + 2 * KV));
  merge_qkv(dqkv, dq, dk, dv, N, Q, KV);
  gemm_backward(dh, g(W.wq), W.bq.data ? g(W.bq) : nullptr, dqkv, A.h.data(), L.qkv_w, L.qkv16, N, Q + 2 * KV, C);
  rmsnorm_backward(dx, g(W.attn_norm), dh, A.x_in.data(), W.attn_norm.f32(), A.rstd1.data(), N, C, cfg_.norm_eps);
}

}  // namespace unmask
