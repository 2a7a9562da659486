// How many masked positions a diffusion step commits, and which: the rules of the reference samplers, as plain
// functions so that tests can pin them on hand-made numbers.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "unmask/base/rng.h"
#include "unmask/diffusion/noise.h"

namespace unmask {

// LLaDA's get_num_transfer_tokens: `masked` positions over `steps` steps, masked / steps each and one more for the
// first masked % steps steps. steps >= 1.
std::vector<int> num_transfer_tokens(int masked, int steps);

// Indices (into conf) of the k largest confidences, largest first; ties go to the lower index. -inf entries are
// never chosen, so fewer than k may come back.
std::vector<int> select_top(std::span<const double> conf, int k);

// Fast-dLLM's threshold rule over confidences sorted in descending order: the top one always, then every one with
// confidence >= threshold.
int threshold_count(std::span<const double> sorted_conf, double threshold);

// Fast-dLLM's factor rule: the largest n with sorted_conf[i] >= 1 - factor / (i + 2) for every i < n, at least 1.
// (The published code also commits every position when only the last one fails; this follows the paper instead.)
int factor_count(std::span<const double> sorted_conf, double factor);

// Dream's time grid torch.linspace(1, eps, steps + 1) in float32, bit for bit as torch's CPU kernel (AVX2 build)
// computes it: from the start for the first half and from the end for the second, fused multiply-adds for the
// scalar elements, and in pairs of 8-lane vectors, base + j * step, while 16 or more elements remain. Checked
// against torch 1.13 for every steps in 1..600.
std::vector<float> dream_timesteps(int steps, float eps);

// Dream's number_transfer_tokens at step i: int(num_mask * (1 - s / t)) in float32 (the linear schedule; another
// schedule reveals its own fraction, dream_reveal), every mask at the last step.
int dream_transfer_count(int num_mask, int i, std::span<const float> timesteps, const NoiseSchedule& ns = {});
// The probability that a position masked at timesteps[i] is revealed by timesteps[i + 1] under the schedule:
// 1 − s/t in float for the linear schedule (Dream's arithmetic), (α(s) − α(t)) / (1 − α(t)) otherwise.
float dream_reveal(std::span<const float> timesteps, int i, const NoiseSchedule& ns);

// k positions drawn without replacement with probabilities softmax(conf / temp) (Gumbel-top-k), in draw order.
std::vector<int> sample_without_replacement(std::span<const double> conf, int k, double temp, Rng& rng);

}  // namespace unmask
