#include "unmask/sampling/logits.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

namespace unmask {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Keeps the k largest entries of z (ties at the k-th value are kept too, as Dream's `logits < kth` rule does).
void keep_top_k(std::span<double> z, int k) {
  if (k <= 0 || k >= int(z.size())) return;
  std::vector<double> v(z.begin(), z.end());
  std::nth_element(v.begin(), v.begin() + (k - 1), v.end(), std::greater<double>());
  const double kth = v[size_t(k - 1)];
  for (double& x : z)
    if (x < kth) x = -kInf;
}

// Keeps the smallest prefix (by descending logit) whose probability exceeds p; the top token always stays.
void keep_top_p(std::span<double> z, double p) {
  if (p >= 1) return;
  std::vector<int> idx(z.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return z[size_t(a)] > z[size_t(b)]; });
  const double lse = log_sum_exp(z);
  double cum = 0;
  bool drop = false;
  for (int i : idx) {
    if (drop) z[size_t(i)] = -kInf;
    cum += std::exp(z[size_t(i)] - lse);
    if (cum > p) drop = true;  // this token is the last one kept
  }
}

void keep_min_p(std::span<double> z, double min_p) {
  if (min_p <= 0) return;
  const double zmax = *std::max_element(z.begin(), z.end());
  const double cut = zmax + std::log(min_p);
  for (double& x : z)
    if (x < cut) x = -kInf;
}

}  // namespace

double log_sum_exp(std::span<const double> z) {
  double m = -kInf;
  for (double x : z) m = std::max(m, x);
  if (m == -kInf) return -kInf;
  double s = 0;
  for (double x : z) s += std::exp(x - m);
  return m + std::log(s);
}

int argmax(std::span<const double> z) {
  int best = 0;
  for (size_t i = 1; i < z.size(); ++i)
    if (z[i] > z[size_t(best)]) best = int(i);
  return best;
}

void filter_logits(std::span<double> z, const TokenRule& rule) {
  if (rule.temperature > 0)
    for (double& x : z) x /= rule.temperature;
  keep_top_k(z, rule.top_k);
  keep_top_p(z, rule.top_p);
  keep_min_p(z, rule.min_p);
}

void token_probs(const float* row, int V, const TokenRule& rule, std::vector<double>& p) {
  p.assign(row, row + V);
  if (rule.banned >= 0 && rule.banned < V) p[size_t(rule.banned)] = -kInf;
  if (rule.unchosen >= 0 && rule.unchosen < V) p[size_t(rule.unchosen)] = -kInf;
  filter_logits(p, rule);
  const double lse = log_sum_exp(p);
  for (double& x : p) x = std::exp(x - lse);
}

int draw_index(std::span<const double> p, Rng& rng) {
  const double u = rng.uniform();
  double cum = 0;
  int last = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    last = int(i);
    cum += p[i];
    if (u < cum) return int(i);
  }
  return last;  // rounding left u above the total: the last token with mass
}

Choice choose_token(const float* row, int V, const TokenRule& rule, Rng& rng, std::vector<double>& work) {
  work.resize(size_t(V));
  std::span<double> z(work);
  for (int v = 0; v < V; ++v) z[size_t(v)] = row[v];
  if (rule.banned >= 0 && rule.banned < V) z[size_t(rule.banned)] = -kInf;
  const double lse_raw = log_sum_exp(z);
  if (rule.unchosen >= 0 && rule.unchosen < V) z[size_t(rule.unchosen)] = -kInf;
  Choice c;
  filter_logits(z, rule);
  if (rule.temperature > 0) {
    // Gumbel-max: argmax z_v - log(-log u_v), one uniform per entry in index order.
    double best = -kInf;
    c.token = 0;
    for (int v = 0; v < V; ++v) {
      double u = std::max(rng.uniform(), 1e-300);
      double g = z[size_t(v)] - std::log(-std::log(u));
      if (g > best) best = g, c.token = v;
    }
  } else {
    c.token = argmax(z);
  }
  c.p_raw = std::exp(double(row[c.token]) - lse_raw);
  if (rule.banned == c.token) c.p_raw = 0;
  if (!rule.processed) return c;
  const double lse = log_sum_exp(z);
  double top1 = -kInf, top2 = -kInf;
  for (double x : z) {
    if (x > top1) top2 = top1, top1 = x;
    else if (x > top2) top2 = x;
  }
  c.p = std::exp(z[size_t(c.token)] - lse);
  c.margin = std::exp(top1 - lse) - std::exp(top2 - lse);
  if (rule.entropy) {
    for (double x : z) {
      double p = std::exp(x - lse);
      c.neg_entropy += p * std::log(p + 1e-10);
    }
  }
  return c;
}

void apply_repeat_penalty(float* row, int V, std::span<const int32_t> recent, double penalty) {
  if (penalty == 1) return;
  std::unordered_set<int32_t> seen;
  for (int32_t t : recent) {
    if (t < 0 || t >= V || !seen.insert(t).second) continue;
    float& x = row[t];
    x = x > 0 ? float(x / penalty) : float(x * penalty);
  }
}

}  // namespace unmask
