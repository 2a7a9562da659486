// cross_entropy_forward / _backward against their refs, and the ref backward against central differences of the
// ref's double loss. Bounds: Σ exp(x - m) over V terms in f32 is off by (V + 4)·eps relative, so log Σ by about
// that much absolutely; m - x_y and the final add round by eps·(|m - x_y| + |log Σ|). dlogits = p·dloss with p
// relative error (V + 8)·eps, and the target entry (p - 1)·dloss loses eps·|dloss| more.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/backward.h"

namespace unmask {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

struct Problem {
  int T, V;
  std::vector<float> logits, dloss;
  std::vector<int32_t> targets;
};

// Rows of N(0, spread²) logits plus an offset per row; every 4th target ignored.
Problem make_problem(int T, int V, double spread, double offset, uint64_t seed) {
  Rng rng(seed);
  Problem p{T, V, std::vector<float>(size_t(T) * V), std::vector<float>(T), std::vector<int32_t>(T)};
  for (int t = 0; t < T; ++t) {
    const double off = offset * (t % 2 ? 1 : -1);
    for (int j = 0; j < V; ++j) p.logits[size_t(t) * V + j] = float(off + spread * rng.normal());
    p.targets[t] = t % 4 == 3 ? -1 : int32_t(rng.below(V));
    p.dloss[t] = float(rng.normal());
  }
  return p;
}

void check_problem(const Problem& p, const char* what) {
  const int T = p.T, V = p.V;
  std::vector<float> loss(T, NAN), rloss(T), d(size_t(T) * V, NAN), rd(d.size());
  cross_entropy_forward(loss.data(), p.logits.data(), p.targets.data(), T, V);
  ref::cross_entropy_forward(rloss.data(), p.logits.data(), p.targets.data(), T, V);
  cross_entropy_backward(d.data(), p.logits.data(), p.targets.data(), p.dloss.data(), T, V);
  ref::cross_entropy_backward(rd.data(), p.logits.data(), p.targets.data(), p.dloss.data(), T, V);
  for (int t = 0; t < T; ++t) {
    const float* x = &p.logits[size_t(t) * V];
    if (p.targets[t] < 0) {
      ASSERT_EQ(loss[t], 0.0f) << what << " ignored row " << t;
      for (int j = 0; j < V; ++j) ASSERT_EQ(d[size_t(t) * V + j], 0.0f) << what << " ignored row " << t;
      continue;
    }
    double m = -INFINITY;
    for (int j = 0; j < V; ++j) m = std::max(m, double(x[j]));
    const double bound = (V + 8) * kEps + 2 * kEps * (std::abs(m - x[p.targets[t]]) + std::abs(rloss[t]));
    ASSERT_TRUE(std::isfinite(loss[t])) << what << " row " << t;
    ASSERT_LE(std::abs(double(loss[t]) - rloss[t]), bound) << what << " loss row " << t << " V " << V;
    for (int j = 0; j < V; ++j) {
      const double want = rd[size_t(t) * V + j], dl = std::abs(p.dloss[t]);
      // Below FLT_MIN (subnormal or flushed p) relative bounds stop holding: allow FLT_MIN·(1 + |dloss|) there.
      const double b = (V + 8) * kEps * (std::abs(want) + (j == p.targets[t] ? dl : 0.0)) +
                       std::numeric_limits<float>::min() * (1 + dl);
      ASSERT_LE(std::abs(double(d[size_t(t) * V + j]) - want), b + 2 * kEps * std::abs(want))
          << what << " dlogits (" << t << ", " << j << ") V " << V;
    }
  }
}

TEST(CrossEntropy, FastMatchesRefWithIgnoredTargets) {
  uint64_t seed = 1;
  for (int T : {1, 4, 33})
    for (int V : {1, 2, 17, 1000, 50257}) check_problem(make_problem(T, V, 2.0, 0.0, seed++), "plain");
}

// Logits around ±3e4 (exp would overflow without the max shift) and a row spread of 50 (probabilities down to
// e^-200, which underflow to 0 in f32: the bound covers them as absolute eps-sized errors).
TEST(CrossEntropy, StableWithVeryLargeLogits) {
  check_problem(make_problem(8, 300, 1.0, 3e4, 7), "offset 3e4");
  check_problem(make_problem(8, 300, 50.0, 0.0, 8), "spread 50");
  std::vector<float> logits = {1e30f, 0.0f, -1e30f};
  const int32_t target = 1;
  float loss, dl = 1.0f, d[3];
  cross_entropy_forward(&loss, logits.data(), &target, 1, 3);
  cross_entropy_backward(d, logits.data(), &target, &dl, 1, 3);
  EXPECT_EQ(loss, 1e30f);
  EXPECT_EQ(d[0], 1.0f);
  EXPECT_EQ(d[1], -1.0f);
  EXPECT_EQ(d[2], 0.0f);
}

TEST(CrossEntropy, BackwardInPlaceAndThreadIndependent) {
  const Problem p = make_problem(40, 3001, 3.0, 0.0, 9);
  std::vector<float> d(p.logits.size()), in_place = p.logits;
  cross_entropy_backward(d.data(), p.logits.data(), p.targets.data(), p.dloss.data(), p.T, p.V);
  cross_entropy_backward(in_place.data(), in_place.data(), p.targets.data(), p.dloss.data(), p.T, p.V);
  for (size_t i = 0; i < d.size(); ++i) ASSERT_EQ(d[i], in_place[i]) << "element " << i;
  const int saved = omp_get_max_threads();
  std::vector<float> l1(p.T), l2(p.T), d1(d.size()), d2(d.size());
  omp_set_num_threads(1);
  cross_entropy_forward(l1.data(), p.logits.data(), p.targets.data(), p.T, p.V);
  cross_entropy_backward(d1.data(), p.logits.data(), p.targets.data(), p.dloss.data(), p.T, p.V);
  omp_set_num_threads(2);
  cross_entropy_forward(l2.data(), p.logits.data(), p.targets.data(), p.T, p.V);
  cross_entropy_backward(d2.data(), p.logits.data(), p.targets.data(), p.dloss.data(), p.T, p.V);
  omp_set_num_threads(saved);
  EXPECT_EQ(l1, l2);
  EXPECT_EQ(d1, d2);
}

TEST(CrossEntropy, RejectsTargetsOutsideTheVocabulary) {
  std::vector<float> logits(6), out(6);
  const int32_t bad[] = {0, 3}, neg[] = {-2, 0};
  const float dl[] = {1, 1};
  EXPECT_THROW(cross_entropy_forward(out.data(), logits.data(), bad, 2, 3), Error);
  EXPECT_THROW(cross_entropy_backward(out.data(), logits.data(), neg, dl, 2, 3), Error);
}

// L = Σ_t dloss_t · loss_t in double; the ref backward against central differences. Truncation is estimated from
// two steps, rounding of L is eps_d·Σ|terms|/h, and the ref's f32 result adds eps·|g|.
double fd_ratio(const Problem& p, double f) {
  std::vector<float> g(p.logits.size());
  ref::cross_entropy_backward(g.data(), p.logits.data(), p.targets.data(), p.dloss.data(), p.T, p.V);
  std::vector<double> x(p.logits.begin(), p.logits.end());
  auto L = [&](double* mag) {
    double l = 0;
    *mag = 0;
    for (int t = 0; t < p.T; ++t) {
      if (p.targets[t] < 0) continue;
      double m = -INFINITY, s = 0;
      for (int j = 0; j < p.V; ++j) m = std::max(m, x[t * p.V + j]);
      for (int j = 0; j < p.V; ++j) s += std::exp(x[t * p.V + j] - m);
      const double term = p.dloss[t] * (std::log(s) + m - x[t * p.V + p.targets[t]]);
      l += term, *mag += std::abs(term) + std::abs(p.dloss[t] * m);
    }
    return l;
  };
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i], h = 1e-4 * std::max(1.0, std::abs(x0));
    double fd[2], mag = 0, m1, m2;
    for (int s = 0; s < 2; ++s) {
      x[i] = x0 + (s + 1) * h;
      const double lp = L(&m1);
      x[i] = x0 - (s + 1) * h;
      const double lm = L(&m2);
      fd[s] = (lp - lm) / (2 * (s + 1) * h), mag = std::max({mag, m1, m2});
    }
    x[i] = x0;
    const double bound = std::abs(fd[0] - fd[1]) + 8 * std::numeric_limits<double>::epsilon() * mag / h +
                         kEps * std::abs(g[i]);
    worst = std::max(worst, std::abs(f * g[i] - fd[0]) / bound);
  }
  return worst;
}

TEST(CrossEntropy, RefBackwardMatchesCentralDifferences) {
  const Problem p = make_problem(5, 6, 1.5, 0.0, 12);
  EXPECT_LE(fd_ratio(p, 1.0), 1.0);
  EXPECT_GT(fd_ratio(p, 1.0 + 1e-3), 1.0);
}

}  // namespace
}  // namespace unmask
