// Training objectives on one backbone: what the model sees for a batch of clean windows, which rows carry a loss,
// their targets and weights. The loss of a step is Σ_r weight[r] · CE(logits_r, target[r]).
//
//   ar    next-token cross-entropy, causal mask; weight 1 / (B·T).
//   mdlm  masked diffusion (absorbing state; LLaDA's pre-training loss): t per sequence, stratified over the batch,
//         each token masked with probability 1 − α(t), CE on the masked positions weighted by −α'(t)/(1 − α(t)),
//         normalised per token (B·T); bidirectional mask.
//   bd3   block diffusion (BD3-LM) with block size Bk: the model sees [x_t ; x_0] (2T rows) under the x_t ⊕ x_0
//         mask — an x_t row of block b sees its own noisy block and the clean blocks before b; an x_0 row sees the
//         clean blocks up to its own — with t drawn per block; CE on the masked rows of the x_t half.
//   joint one checkpoint that decodes as AR, as block diffusion and as self-speculation (Nemotron-Labs-Diffusion's
//         recipe): the model sees [x_t ; x_0] (2T rows); the x_0 rows are causal and carry the AR loss (next token,
//         weight 1 / (B·T)), so their keys and values are exactly AR's; an x_t row of block b sees its own noisy
//         block and the clean (causal) x_0 positions before b, and carries bd3's loss times diffusion_weight. At
//         inference a block of masks after a KV cache of committed tokens is the draft; the causal rows verify it.
//   sft   LLaDA's supervised fine-tuning: a prompt and its answer (response + terminator + padding to T), t per
//         example (stratified), prompt tokens never masked, each answer token masked with probability 1 − α(t),
//         CE on the masked positions weighted by −α'(t)/(1 − α(t)) (1/t, linear) and normalised by the example's
//         answer length, averaged over the batch; bidirectional mask.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "unmask/base/rng.h"
#include "unmask/diffusion/noise.h"
#include "unmask/model/model.h"

namespace unmask {

enum class ObjectiveKind { kAR, kMDLM, kBD3, kSFT, kJoint };
ObjectiveKind parse_objective(std::string_view name);  // ar, mdlm, bd3, sft, joint; throws listing them
std::string_view objective_name(ObjectiveKind k);

struct Objective {
  ObjectiveKind kind = ObjectiveKind::kAR;
  Schedule schedule = Schedule::kLinear;
  double eps = 1e-3;       // t is drawn from [eps, 1]
  int block = 0;           // bd3 and joint block size
  double diffusion_weight = 0.3;  // joint: the block-diffusion loss's weight beside the AR loss
  int32_t mask_token = -1; // mdlm, bd3, sft, joint
  bool shift = false;      // mdlm, sft: row i predicts position i + 1 (Dream); the first token is never masked
  // The mask kind a model trained with this objective uses at inference.
  MaskKind mask_kind() const;
  void validate(const ModelConfig& c) const;  // throws naming what does not fit
};

struct LossBatch {
  TrainBatch batch;
  std::vector<int32_t> targets;  // (R) one per logit row
  std::vector<float> weights;    // (R)
};

// windows: B clean sequences of T + 1 tokens each, back to back (ar reads the shifted pair; the diffusion
// objectives use the first T). Deterministic in rng.
LossBatch make_loss_batch(const Objective& o, std::span<const int32_t> windows, int B, int T, Rng& rng);

// sft: seqs (B, T) examples already padded to T (prompt, answer), prompt_lens (B) with 0 <= prompt_lens[b] < T.
// Deterministic in rng.
LossBatch make_sft_loss_batch(const Objective& o, std::span<const int32_t> seqs, std::span<const int32_t> prompt_lens,
                              int B, int T, Rng& rng);

// The sequences [s0, s1) of a batch, with their loss rows: one process's share in data-parallel training.
LossBatch slice_sequences(const LossBatch& lb, int s0, int s1);

// Stratified draws of n values in [eps, 1]: one uniform offset, then evenly spaced (antithetic sampling).
std::vector<double> stratified_times(int n, double eps, Rng& rng);

}  // namespace unmask
