// Logits processors for one row of the output: temperature, top-k, top-p, min-p, repetition penalty, a banned token,
// and the choice of a token with the confidences the samplers rank positions by. Everything is in double.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "unmask/base/rng.h"

namespace unmask {

struct TokenRule {
  double temperature = 0;  // 0: argmax (first index of the maximum, as torch.argmax)
  int top_k = 0;           // 0: off
  double top_p = 1;        // 1: off; keeps the smallest set whose probability exceeds top_p (at least one token)
  double min_p = 0;        // 0: off; drops tokens with p < min_p * p_max
  int32_t banned = -1;     // a token that is never chosen and has no probability (forbidden EOS), -1: none
  int32_t unchosen = -1;   // a token that is never chosen but keeps its share of p_raw (the mask id), -1: none
  bool processed = true;   // fill Choice::p and margin (an exp per entry; LLaDA reads only p_raw)
  bool entropy = false;    // fill Choice::neg_entropy (an exp and a log per entry; only Dream's entropy order reads it)
};

// The token chosen for one position and how sure the model was.
struct Choice {
  int32_t token = -1;
  double p_raw = 0;        // softmax(logits)[token] of the row as given (banned token removed): LLaDA's confidence
  double p = 0;            // probability of token under the processed distribution (temperature, filters): Dream's;
                           // 0 unless rule.processed
  double margin = 0;       // top-1 minus top-2 probability, processed distribution (Dream topk_margin); likewise
  double neg_entropy = 0;  // sum p log(p + 1e-10), processed distribution (Dream entropy); 0 unless rule.entropy
};

// Chooses a token for a row (V). With temperature > 0 the token is drawn by Gumbel-max over the processed logits in
// double (LLaDA's exp(l) / (-log u)^T is the same argmax); rng supplies V uniforms then. work: scratch, resized.
Choice choose_token(const float* row, int V, const TokenRule& rule, Rng& rng, std::vector<double>& work);

// The distribution choose_token draws from at temperature > 0 (banned and unchosen tokens removed, then
// filter_logits), as probabilities p (V). Speculative decoding compares a draft's and a target's.
void token_probs(const float* row, int V, const TokenRule& rule, std::vector<double>& p);

// An index drawn from probabilities p (summing to 1, up to rounding) with one uniform of rng.
int draw_index(std::span<const double> p, Rng& rng);

// llama.cpp's repetition penalty on row (V): for each distinct token of `recent`, a positive logit is divided by
// penalty and a negative one multiplied.
void apply_repeat_penalty(float* row, int V, std::span<const int32_t> recent, double penalty);

// z (V), processed in place: z / T (T > 0), then top-k, top-p and min-p set the dropped entries to -inf.
void filter_logits(std::span<double> z, const TokenRule& rule);

// log(sum exp z), -inf for an all -inf row.
double log_sum_exp(std::span<const double> z);

// The index of the first maximum of z.
int argmax(std::span<const double> z);

}  // namespace unmask
