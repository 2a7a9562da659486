// Activation buffers of a forward pass: inference reuses one set across layers and calls (steady-state decoding
// allocates nothing); training keeps every layer's activations for the backward pass.
#pragma once

#include <cstdint>
#include <vector>

#include "unmask/kernels/attention.h"
#include "unmask/model/model.h"
#include "unmask/model/moe.h"

namespace unmask {

struct Model::Segment {
  int row0 = 0;    // first query row (into the N rows of the call)
  int n = 0;       // query rows
  int key0 = 0;    // first key row in the layer's key buffer
  int n_keys = 0;  // keys the segment's queries may draw from
  // Set when every segment of the call continues a cache of its own (forward_cached_batch): its keys are that
  // cache's, and the segment's rows go at its position `first`.
  KVCache* cache = nullptr;
  int first = 0;
};

// Where one layer's activations go. Null pointers are not kept (inference).
struct Model::LayerBufs {
  float* x = nullptr;      // (N, C) the residual stream, updated in place
  float* x_in = nullptr;   // (N, C) the layer's input, kept for the backward pass
  float* h = nullptr;      // (N, C) attention RMSNorm output
  float* rstd1 = nullptr;  // (N)
  float* qkv = nullptr;    // (N, Q + 2 KV) fused projection
  float* q = nullptr;      // (N, Q) after RoPE
  float* k = nullptr;      // key buffer; this call's rows start at k + first (after RoPE)
  float* v = nullptr;      // value buffer, likewise
  size_t first = 0;
  float* att = nullptr;    // (N, Q) attention output
  float* lse = nullptr;    // (N, Hq)
  float* x_mid = nullptr;  // (N, C) residual after attention, kept for the backward pass
  float* h2 = nullptr;     // (N, C) FFN RMSNorm output
  float* rstd2 = nullptr;  // (N)
  float* gu = nullptr;     // (N, 2F) [gate | up]
  float* act = nullptr;    // (N, F) silu(gate) · up
  float* tmp = nullptr;    // (N, C) projection output before the residual add
};

template <typename T>
T* fit(std::vector<T>& b, size_t n) {
  if (b.size() < n) b.resize(n);
  return b.data();
}

struct Model::Scratch {
  std::vector<float> x, h, q, k, v, wide, att, act, tmp, hr;  // (N, ...) rows
  std::vector<KeySpan> spans;                               // (N)
  // Mixture of experts: router logits (N, E), picks and weights (N, K), one expert's rows (n <= N) on their way
  // through its GEMMs: input (n, C), gate and up (n, FE), output (n, C).
  std::vector<float> router, route_w, expert_x, expert_gate, expert_up, expert_y;
  std::vector<int32_t> route_sel;
  ExpertRows groups;
};

struct Model::TrainActs {
  struct Layer {
    std::vector<float> x_in, h, rstd1, q, k, v, att, lse, x_mid, h2, rstd2, gu, act;
  };
  std::vector<Layer> layers;
  std::vector<float> x;           // (N, C) the residual stream; after the last layer, the final hidden states
  std::vector<float> hr, rstd_r;  // (R, C), (R): final-normed rows and their rstd
  std::vector<float> qkv, tmp;    // shared scratch
  // Backward scratch
  std::vector<float> dx, dh, dqkv, dq, dk, dv, datt, dgu, dact, dhr;
};

}  // namespace unmask
