// How likely a text is under a model: the exact negative log-likelihood of an AR model (with a sliding window for
// text longer than its context), and for masked diffusion models the ELBO, an upper bound on the NLL estimated by
// Monte-Carlo over the diffusion time with its standard error:
//
//   NELBO(x) = E_t [ w(t) Σ_{i masked in x_t} −log p(x_i | x_t) ],  w(t) = −α'(t) / (1 − α(t)),  t ~ U(0, 1],
//
// with each token masked with probability 1 − α(t) under the model's own noise schedule (the value does not depend on
// the schedule; the estimator's variance does). Enumerating every mask gives the bound exactly for short sequences:
//
//   NELBO(x) = Σ_{m=1..L} (1/m) · mean over the masks M with |M| = m of Σ_{i∈M} −log p(x_i | x_M),
//
// which is also what LLaDA's conditional estimator averages to: l ~ U{1..L} answer tokens masked, (L/l) Σ CE.
// Block-causal models get the block-diffusion bound: the sum over blocks of each block's NELBO given the clean
// blocks before it. Shifted models (Dream: row i predicts position i + 1) never mask the first token of a window.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "unmask/diffusion/noise.h"
#include "unmask/model/model.h"

namespace unmask {

// Called as work finishes with (done, total): windows for ar_likelihood, tokens for diffusion_elbo.
using EvalProgress = std::function<void(int64_t done, int64_t total)>;

struct Likelihood {
  std::string method;             // "ar", "elbo", "bd3-elbo", "conditional-elbo", "exact-elbo"
  std::vector<double> token_nll;  // (count) per scored token: its NLL (ar), or its share of the bound (MC mean)
  int64_t count = 0;              // tokens scored
  double nll = 0;                 // total over the scored tokens, nats (a bound for the diffusion methods)
  double se = 0;                  // standard error of nll (Monte-Carlo), 0 when exact
  int samples = 0;                // Monte-Carlo samples per window (0 when exact)
  int windows = 0;                // windows the text was cut into
  double per_token() const { return count ? nll / double(count) : 0.0; }
  double per_token_se() const { return count ? se / double(count) : 0.0; }
  double ppl() const;             // exp(per_token())
};

// AR: every token but the first is scored once. Windows of at most `context` tokens (0: the model's context) start
// every `stride` tokens (0: context − 1, so that consecutive windows share the one token the next is predicted
// from); a window scores only the tokens the previous one did not, each seeing up to context − 1 tokens before it. Throws for a model without a causal mask, or a text of fewer than 2 tokens.
struct ArOptions {
  int context = 0, stride = 0;
};
Likelihood ar_likelihood(Model& m, std::span<const int32_t> tokens, const ArOptions& o = {},
                         const EvalProgress& progress = {});

// Masked diffusion (bidirectional, or block-causal for the block bound): the text is cut into windows of `context`
// tokens (0: the model's context; the last may be shorter; a shifted model's windows share one token), each bounded
// on its own. samples: K draws of t per
// window, stratified (t_k = (u + k) / K) when antithetic, else independent; for block-causal models t is drawn per
// block. schedule / eps: the model's (model_schedule). Throws for a causal model, samples < 1 or a text shorter than
// 2 tokens.
struct ElboOptions {
  int context = 0;
  int samples = 64;
  bool antithetic = true;
  uint64_t seed = 0;
  NoiseSchedule schedule;
};
Likelihood diffusion_elbo(Model& m, std::span<const int32_t> tokens, const ElboOptions& o,
                          const EvalProgress& progress = {});

// LLaDA's conditional estimator of −log p(answer | prompt): prompt tokens stay clean, exactly l of the L answer
// tokens are masked (l stratified over 1..L across the mc samples), each sample scores (L / l) Σ_masked CE.
Likelihood conditional_elbo(Model& m, std::span<const int32_t> prompt, std::span<const int32_t> answer, int mc,
                            uint64_t seed);

// The bound computed exactly by enumerating every mask of the maskable positions (at most 16 per window: 65,535
// masks): a test oracle and `eval elbo --exact`. Block-causal models: per block, given the clean blocks before it.
// The first `keep` tokens (a prompt; at least 1 for a shifted model) are never masked.
Likelihood exact_elbo(Model& m, std::span<const int32_t> tokens, int keep = 0);

}  // namespace unmask
