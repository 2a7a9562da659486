#include "unmask/sampling/transfer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "unmask/base/error.h"

namespace unmask {

std::vector<int> num_transfer_tokens(int masked, int steps) {
  check(steps >= 1 && masked >= 0, "num_transfer_tokens: {} masks over {} steps, expected steps >= 1", masked, steps);
  std::vector<int> n(size_t(steps), masked / steps);
  for (int i = 0; i < masked % steps; ++i) ++n[size_t(i)];
  return n;
}

std::vector<int> select_top(std::span<const double> conf, int k) {
  std::vector<int> idx;
  for (size_t i = 0; i < conf.size(); ++i)
    if (conf[i] > -std::numeric_limits<double>::infinity()) idx.push_back(int(i));
  k = std::min(k, int(idx.size()));
  auto better = [&](int a, int b) { return conf[size_t(a)] > conf[size_t(b)] || (conf[size_t(a)] == conf[size_t(b)] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + std::max(k, 0), idx.end(), better);
  idx.resize(size_t(std::max(k, 0)));
  return idx;
}

int threshold_count(std::span<const double> sorted_conf, double threshold) {
  if (sorted_conf.empty()) return 0;
  int n = 1;
  for (size_t i = 1; i < sorted_conf.size(); ++i)
    if (sorted_conf[i] >= threshold) ++n;
  return n;
}

int factor_count(std::span<const double> sorted_conf, double factor) {
  if (sorted_conf.empty()) return 0;
  int n = 1;
  while (n < int(sorted_conf.size()) && sorted_conf[size_t(n)] >= 1.0 - factor / double(n + 2)) ++n;
  return n;
}

namespace {

// torch's scalar linspace element (its CPU kernel is compiled with FMA contraction).
float linspace_scalar(int64_t i, int64_t n, float start, float end, float step) {
  return i < n / 2 ? std::fma(step, float(i), start) : std::fma(-step, float(n - i - 1), end);
}

}  // namespace

std::vector<float> dream_timesteps(int steps, float eps) {
  const int64_t n = steps + 1;
  if (n == 1) return {1.0f};
  std::vector<float> t;
  const float start = 1.0f, end = eps, step = (end - start) / float(n - 1);
  constexpr int64_t W = 8;  // Vectorized<float> lanes of torch's AVX2 kernel
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W)  // two vectors at a time, each base + j * step with two roundings
    for (int64_t v = i; v < i + 2 * W; v += W) {
      const float base = linspace_scalar(v, n, start, end, step);
      for (int64_t j = 0; j < W; ++j) t.push_back(base + float(double(j) * double(step)));
    }
  for (; i < n; ++i) t.push_back(linspace_scalar(i, n, start, end, step));
  return t;
}

float dream_reveal(std::span<const float> timesteps, int i, const NoiseSchedule& ns) {
  const float t = timesteps[size_t(i)], s = timesteps[size_t(i) + 1];
  return ns.kind == Schedule::kLinear ? 1.0f - s / t : float(ns.reveal(t, s));
}

int dream_transfer_count(int num_mask, int i, std::span<const float> timesteps, const NoiseSchedule& ns) {
  const int steps = int(timesteps.size()) - 1;
  if (i >= steps - 1) return num_mask;
  return int(float(num_mask) * dream_reveal(timesteps, i, ns));
}

std::vector<int> sample_without_replacement(std::span<const double> conf, int k, double temp, Rng& rng) {
  std::vector<double> key(conf.size());
  for (size_t i = 0; i < conf.size(); ++i) {
    double u = std::max(rng.uniform(), 1e-300);
    key[i] = conf[i] / temp - std::log(-std::log(u));
  }
  return select_top(key, k);
}

}  // namespace unmask
