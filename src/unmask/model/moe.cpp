// The mixture-of-experts FFN: softmax routing, the rows of each expert through its GEMMs together, a weighted sum.
#include "unmask/model/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "unmask/base/error.h"
#include "unmask/kernels/activations.h"
#include "unmask/model/model.h"
#include "unmask/model/scratch.h"

namespace unmask {

void router_logits(float* logits, const float* h, const float* router, int N, int E, int C) {
#pragma omp parallel for schedule(static) if (int64_t(N) * E * C >= 65536)
  for (int i = 0; i < N; ++i) {
    const float* x = h + int64_t(i) * C;
    for (int e = 0; e < E; ++e) {
      const float* r = router + int64_t(e) * C;
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int c = 0; c < C; ++c) sum += double(x[c]) * double(r[c]);
      logits[int64_t(i) * E + e] = float(sum);
    }
  }
}

namespace {

// logits (E) -> p (E) softmax in f32 (max subtracted), as llama.cpp's f32 soft_max.
void softmax_row(float* p, const float* logits, int E) {
  const float mx = *std::max_element(logits, logits + E);
  float sum = 0;
  for (int e = 0; e < E; ++e) sum += (p[e] = std::exp(logits[e] - mx));
  for (int e = 0; e < E; ++e) p[e] /= sum;
}

}  // namespace

void route_top_k(int32_t* sel, float* w, const float* logits, int N, int E, int K, bool renormalise) {
  check(K >= 1 && K <= E, "route_top_k: K = {}, expected 1 to E = {}", K, E);
#pragma omp parallel for schedule(static) if (int64_t(N) * E >= 16384)
  for (int i = 0; i < N; ++i) {
    thread_local std::vector<float> p;
    thread_local std::vector<int32_t> order;
    p.resize(size_t(E)), order.resize(size_t(E));
    softmax_row(p.data(), logits + int64_t(i) * E, E);
    std::iota(order.begin(), order.end(), 0);
    // Largest first; stable, so equal probabilities keep the lower index first.
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[size_t(a)] > p[size_t(b)]; });
    int32_t* s = sel + int64_t(i) * K;
    float* wi = w + int64_t(i) * K;
    float total = 0;
    for (int j = 0; j < K; ++j) s[j] = order[size_t(j)], total += (wi[j] = p[size_t(order[size_t(j)])]);
    if (renormalise)
      for (int j = 0; j < K; ++j) wi[j] /= total;
  }
}

void group_by_expert(ExpertRows& out, const int32_t* sel, int N, int E, int K) {
  out.begin.assign(size_t(E) + 1, 0);
  for (int64_t i = 0; i < int64_t(N) * K; ++i) ++out.begin[size_t(sel[i]) + 1];
  std::partial_sum(out.begin.begin(), out.begin.end(), out.begin.begin());
  out.entry.resize(size_t(N) * K);
  out.fill.assign(out.begin.begin(), out.begin.end() - 1);
  for (int64_t i = 0; i < int64_t(N) * K; ++i) out.entry[size_t(out.fill[size_t(sel[i])]++)] = int32_t(i);
}

namespace {

// x (N, C) -> xe (n, C): the rows of an expert's entries (row * K + slot).
void gather_rows(float* xe, const float* x, const int32_t* entry, int n, int K, int C) {
#pragma omp parallel for schedule(static) if (int64_t(n) * C >= 65536)
  for (int i = 0; i < n; ++i) std::copy_n(x + int64_t(entry[i] / K) * C, C, xe + int64_t(i) * C);
}

// out (N, C) rows += w[entry] · y (n, C) rows. An expert's entries are distinct rows, so rows never collide.
void scatter_add_rows(float* out, const float* y, const int32_t* entry, const float* w, int n, int K, int C) {
#pragma omp parallel for schedule(static) if (int64_t(n) * C >= 65536)
  for (int i = 0; i < n; ++i) {
    float* o = out + int64_t(entry[i] / K) * C;
    const float* yi = y + int64_t(i) * C;
    const float wi = w[entry[i]];
    for (int c = 0; c < C; ++c) o[c] += wi * yi[c];
  }
}

}  // namespace

void Model::prepare_experts(size_t l) {
  const LayerWeights& W = w_.get().layers[l];
  LayerLinears& L = lin_[l];
  const int E = cfg_.n_experts;
  // Expert e's matrix (OC, IC): the e-th of the E equal slices of a tensor ne = {IC, OC, E}, read in place.
  auto slice = [this, E](const TensorView& t, int e) {
    const size_t bytes = t.nbytes() / size_t(E);
    return matrix_linear(static_cast<const uint8_t*>(t.data) + size_t(e) * bytes, t.dtype, int(t.ne[1]),
                         int(t.ne[0]));
  };
  for (int e = 0; e < E; ++e) {
    L.gate_e.push_back(slice(W.gate_exps, e));
    L.up_e.push_back(slice(W.up_exps, e));
    L.down_e.push_back(slice(W.down_exps, e));
  }
  if (W.gate_inp.dtype == DType::F32) {
    L.router = W.gate_inp.f32();
  } else {
    L.router_copy.resize(size_t(W.gate_inp.nelements()));
    to_f32(W.gate_inp.dtype, W.gate_inp.data, L.router_copy.data(), W.gate_inp.nelements());
    L.router = L.router_copy.data();
  }
}

// h (N, C) -> out (N, C) = Σ_j w_j · down_j(silu(gate_j · h) ⊙ up_j · h) over the experts j each row picked. Experts
// run in index order, each over all of its rows at once (one GEMM per matrix, decode reads only the picked experts),
// so every row adds its experts' outputs in the same order whatever the batch.
void Model::moe_forward(int l, int N, const float* h, float* out) {
  const int C = cfg_.d_model, E = cfg_.n_experts, K = cfg_.n_experts_used, FE = cfg_.expert_ffn;
  LayerLinears& L = lin_[size_t(l)];
  Scratch& s = *s_;
  float* logits = fit(s.router, size_t(N) * E);
  int32_t* sel = fit(s.route_sel, size_t(N) * K);
  float* w = fit(s.route_w, size_t(N) * K);
  float* xe = fit(s.expert_x, size_t(N) * C);
  float* ge = fit(s.expert_gate, size_t(N) * FE);
  float* ue = fit(s.expert_up, size_t(N) * FE);
  float* ye = fit(s.expert_y, size_t(N) * C);
  router_logits(logits, h, L.router, N, E, C);
  route_top_k(sel, w, logits, N, E, K, cfg_.expert_norm);
  group_by_expert(s.groups, sel, N, E, K);
  std::fill_n(out, size_t(N) * C, 0.0f);
  for (int e = 0; e < E; ++e) {
    const int n = s.groups.begin[size_t(e) + 1] - s.groups.begin[size_t(e)];
    if (n == 0) continue;
    const int32_t* entry = s.groups.entry.data() + s.groups.begin[size_t(e)];
    gather_rows(xe, h, entry, n, K, C);
    L.gate_e[size_t(e)].forward(ge, xe, n);
    L.up_e[size_t(e)].forward(ue, xe, n);
    swiglu_forward(ge, ge, ue, int64_t(n) * FE);
    L.down_e[size_t(e)].forward(ye, ge, n);
    scatter_add_rows(out, ye, entry, w, n, K, C);
  }
}

}  // namespace unmask
