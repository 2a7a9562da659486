// Softmax routing of a mixture of experts, as llama.cpp's build_moe_ffn computes it with softmax gating: every token
// goes to the K experts of largest router probability, whose outputs are summed weighted by those probabilities.
#pragma once

#include <cstdint>
#include <vector>

namespace unmask {

// h (N, C), router (E, C) f32 -> logits (N, E). Each logit is one dot product accumulated in double in a fixed order,
// so a row's logits, and the experts it picks, are the same bits whatever the batch around it or the thread count.
void router_logits(float* logits, const float* h, const float* router, int N, int E, int C);

// logits (N, E) -> sel (N, K) the K experts of largest softmax probability of each row, most probable first (equal
// probabilities: the lower index first), and w (N, K) those probabilities (f32), divided by their sum when
// renormalise.
void route_top_k(int32_t* sel, float* w, const float* logits, int N, int E, int K, bool renormalise);

// The rows routed to each expert: entries begin[e] .. begin[e+1] of entry, each row * K + slot (an index into sel
// and w), rows ascending.
struct ExpertRows {
  std::vector<int32_t> begin;  // (E + 1)
  std::vector<int32_t> entry;  // (N K)
  std::vector<int32_t> fill;   // (E) scratch: the next free entry of each expert (reused, so decoding allocates nothing)
};
void group_by_expert(ExpertRows& out, const int32_t* sel, int N, int E, int K);

}  // namespace unmask
