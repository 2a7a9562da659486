// linear_backward (oneDNN) against ref::linear_backward, and the ref against central differences.
// Bounds: dx is a dot product of length OC, dw one of length T, db a sum of T terms, each accumulated in f32 in
// some order: |fast - exact| <= (K + 2)·eps·Σ|terms|, plus 2·eps·|previous value| for the accumulated dw, db.
// L = Σ r ⊙ (x·Wᵀ + b) is linear in each input, so central differences have no truncation error: only the
// rounding of L (eps_d·Σ|terms of L| / h) and of the ref's f32 result (eps·|g|).
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
constexpr double kEpsD = std::numeric_limits<double>::epsilon();

struct Problem {
  int T, OC, IC;
  std::vector<float> x, w, dout, dw0, db0;
};

std::vector<float> randn(size_t n, Rng& rng) {
  std::vector<float> v(n);
  for (auto& e : v) e = float(rng.normal());
  return v;
}

Problem make_problem(int T, int OC, int IC, uint64_t seed) {
  Rng rng(seed);
  Problem p{T, OC, IC, randn(size_t(T) * IC, rng), randn(size_t(OC) * IC, rng), randn(size_t(T) * OC, rng),
            randn(size_t(OC) * IC, rng), randn(size_t(OC), rng)};
  return p;
}

struct Grads {
  std::vector<float> dx, dw, db;
};

template <typename F>
Grads run(const Problem& p, F backward, bool want_dx = true, bool want_db = true) {
  Grads g{std::vector<float>(size_t(p.T) * p.IC, NAN), p.dw0, p.db0};
  backward(want_dx ? g.dx.data() : nullptr, g.dw.data(), want_db ? g.db.data() : nullptr, p.dout.data(), p.x.data(),
           p.w.data(), p.T, p.OC, p.IC);
  return g;
}

// Worst |got - f·want| / bound over dx, dw, db (f = 1 + 1e-3 for the negative control).
double worst_ratio(const Problem& p, const Grads& got, const Grads& want, double f, bool dx_written) {
  double worst = 0;
  auto upd = [&](double g, double w, double bound) {
    const double r = std::abs(g - f * w) / (bound + 1e-30);
    if (!(r <= worst)) worst = r;
  };
  for (int t = 0; dx_written && t < p.T; ++t)
    for (int i = 0; i < p.IC; ++i) {
      double mag = 0;
      for (int o = 0; o < p.OC; ++o) mag += std::abs(double(p.dout[t * p.OC + o]) * p.w[o * p.IC + i]);
      upd(got.dx[t * p.IC + i], want.dx[t * p.IC + i], (p.OC + 2) * kEps * mag);
    }
  for (int o = 0; o < p.OC; ++o) {
    for (int i = 0; i < p.IC; ++i) {
      double mag = std::abs(p.dw0[o * p.IC + i]);
      for (int t = 0; t < p.T; ++t) mag += std::abs(double(p.dout[t * p.OC + o]) * p.x[t * p.IC + i]);
      upd(got.dw[o * p.IC + i], want.dw[o * p.IC + i], (p.T + 2) * kEps * mag);
    }
    double mag = std::abs(p.db0[o]);
    for (int t = 0; t < p.T; ++t) mag += std::abs(p.dout[t * p.OC + o]);
    upd(got.db[o], want.db[o], (p.T + 2) * kEps * mag);
  }
  return worst;
}

TEST(LinearBackward, FastMatchesRefOnAwkwardShapes) {
  const int shapes[][3] = {{1, 1, 1}, {1, 7, 33}, {7, 33, 100}, {33, 100, 7}, {100, 65, 130}, {257, 384, 96},
                           {130, 17, 384}};
  uint64_t seed = 1;
  for (const auto& s : shapes) {
    const Problem p = make_problem(s[0], s[1], s[2], seed++);
    const Grads ref = run(p, ref::linear_backward);
    EXPECT_LE(worst_ratio(p, run(p, linear_backward), ref, 1.0, true), 1.0)
        << "T " << p.T << " OC " << p.OC << " IC " << p.IC;
    // Twice with the same shape: the cached primitives serve again.
    EXPECT_LE(worst_ratio(p, run(p, linear_backward), ref, 1.0, true), 1.0) << "second call, T " << p.T;
  }
}

TEST(LinearBackward, NullDxAndDbAreSkipped) {
  const Problem p = make_problem(9, 13, 21, 5);
  const Grads ref = run(p, ref::linear_backward);
  const Grads g = run(p, linear_backward, false, false);
  for (float v : g.dx) ASSERT_TRUE(std::isnan(v)) << "dx was written though null was passed";
  for (size_t o = 0; o < g.db.size(); ++o) ASSERT_EQ(g.db[o], p.db0[o]) << "db was changed though null was passed";
  Grads want = ref;
  want.db = p.db0;
  EXPECT_LE(worst_ratio(p, g, want, 1.0, false), 1.0);
}

TEST(LinearBackward, ComparisonRejectsAPerturbedGradient) {
  const Problem p = make_problem(33, 40, 24, 6);
  const Grads fast = run(p, linear_backward), ref = run(p, ref::linear_backward);
  EXPECT_LE(worst_ratio(p, fast, ref, 1.0, true), 1.0);
  EXPECT_GT(worst_ratio(p, fast, ref, 1.0 + 1e-3, true), 1.0);
}

// oneDNN's f32 matmul is deterministic for a fixed thread count; across thread counts it may split the reduction
// differently. Checked here at one shape (bit-equal with oneDNN 2.6 on this machine).
TEST(LinearBackward, SameBitsWithOneOrTwoThreads) {
  const Problem p = make_problem(300, 200, 130, 8);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Grads one = run(p, linear_backward);
  omp_set_num_threads(2);
  const Grads two = run(p, linear_backward);
  omp_set_num_threads(saved);
  for (size_t i = 0; i < one.dx.size(); ++i) ASSERT_EQ(one.dx[i], two.dx[i]) << "dx " << i;
  for (size_t i = 0; i < one.dw.size(); ++i) ASSERT_EQ(one.dw[i], two.dw[i]) << "dw " << i;
  for (size_t i = 0; i < one.db.size(); ++i) ASSERT_EQ(one.db[i], two.db[i]) << "db " << i;
}

// L = Σ r ⊙ (x·Wᵀ + b) in double.
double loss(const Problem& p, const std::vector<double>& x, const std::vector<double>& w,
            const std::vector<double>& b, double* mag) {
  double L = 0;
  *mag = 0;
  for (int t = 0; t < p.T; ++t)
    for (int o = 0; o < p.OC; ++o) {
      double s = b[o];
      for (int i = 0; i < p.IC; ++i) s += x[t * p.IC + i] * w[o * p.IC + i];
      L += p.dout[t * p.OC + o] * s, *mag += std::abs(p.dout[t * p.OC + o] * s);
    }
  return L;
}

double central_difference_check(Problem p, double f) {
  std::fill(p.dw0.begin(), p.dw0.end(), 0.0f), std::fill(p.db0.begin(), p.db0.end(), 0.0f);
  const Grads g = run(p, ref::linear_backward);
  std::vector<double> x(p.x.begin(), p.x.end()), w(p.w.begin(), p.w.end()), b(p.OC);
  for (auto& e : b) e = 0.5;
  std::vector<double>* xs[] = {&x, &w, &b};
  const std::vector<float>* gs[] = {&g.dx, &g.dw, &g.db};
  double worst = 0;
  for (int k = 0; k < 3; ++k)
    for (size_t i = 0; i < xs[k]->size(); ++i) {
      double& e = (*xs[k])[i];
      const double e0 = e, h = 1e-4 * std::max(1.0, std::abs(e0));
      double m1, m2;
      e = e0 + h;
      const double lp = loss(p, x, w, b, &m1);
      e = e0 - h;
      const double lm = loss(p, x, w, b, &m2);
      e = e0;
      const double fd = (lp - lm) / (2 * h), gi = (*gs[k])[i];
      const double bound = 8 * kEpsD * std::max(m1, m2) / h + kEps * std::abs(gi);
      worst = std::max(worst, std::abs(f * gi - fd) / bound);
    }
  return worst;
}

TEST(LinearBackward, RefMatchesCentralDifferences) {
  const Problem p = make_problem(3, 4, 5, 11);
  EXPECT_LE(central_difference_check(p, 1.0), 1.0);
  EXPECT_GT(central_difference_check(p, 1.0 + 1e-3), 1.0);
}

TEST(LinearBackward, RejectsBadShapes) {
  float a = 0;
  EXPECT_THROW(linear_backward(&a, &a, &a, &a, &a, &a, 1, 0, 1), Error);
  EXPECT_THROW(linear_backward(&a, nullptr, &a, &a, &a, &a, 1, 1, 1), Error);
}

}  // namespace
}  // namespace unmask
