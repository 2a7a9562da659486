// Backward of embedding, RMSNorm, RoPE and SwiGLU: the refs against central differences of double forwards on tiny
// shapes, the fast kernels against the refs on awkward sizes, and 1 thread against 2 (same bits).
// Bounds (fast vs ref): a sum of n f32 terms is off by at most n·eps·Σ|terms|; RMSNorm's dx holds a dot product of
// length C (C·eps·Σ|g w x|) and a handful of products; RoPE rotates with f32 cos/sin (a few eps of |a| + |b|);
// SwiGLU's σ uses a ~1-ulp exp, and 1 - σ(g) loses |g|·eps relative when g is large. Central differences: the
// truncation error is estimated as |FD(h) - FD(2h)|, the rounding of L as eps_d·Σ|terms of L|/h, and the ref's
// own f32 inputs and result (rstd rounded to f32) add a few eps of the gradient's terms.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/backward.h"
#include "unmask/kernels/norm.h"

namespace unmask {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();
constexpr double kEpsD = std::numeric_limits<double>::epsilon();

std::vector<float> randn(size_t n, Rng& rng, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& e : v) e = float(rng.normal() * scale);
  return v;
}

// Worst |ref - FD| / bound over the entries of x, where L(x) is a double function and g the ref gradient;
// extra(i) is the f32 part of the bound for entry i. f scales g (1 + 1e-3 for the negative control).
double fd_check(std::vector<double>& x, const std::function<double(double*)>& L, const std::vector<float>& g,
                const std::function<double(size_t)>& extra, double f) {
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i], h = 1e-4 * std::max(1.0, std::abs(x0));
    double fd[2], mag = 0;
    for (int s = 0; s < 2; ++s) {
      double m1, m2;
      x[i] = x0 + (s + 1) * h;
      const double lp = L(&m1);
      x[i] = x0 - (s + 1) * h;
      const double lm = L(&m2);
      fd[s] = (lp - lm) / (2 * (s + 1) * h), mag = std::max({mag, m1, m2});
    }
    x[i] = x0;
    const double bound = std::abs(fd[0] - fd[1]) + 8 * kEpsD * mag / h + extra(i) + kEps * std::abs(g[i]);
    worst = std::max(worst, std::abs(f * g[i] - fd[0]) / bound);
  }
  return worst;
}

template <typename F>
void expect_same_bits_across_threads(F run, const char* what) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<float> one = run();
  omp_set_num_threads(2);
  const std::vector<float> two = run();
  omp_set_num_threads(saved);
  for (size_t i = 0; i < one.size(); ++i) ASSERT_EQ(one[i], two[i]) << what << " element " << i;
}

// ---- embedding ----

TEST(EmbeddingBackward, FastMatchesRefAndScattersRepeatedTokens) {
  for (auto [T, V, C] : {std::tuple{1, 1, 1}, {7, 5, 33}, {200, 37, 700}}) {
    Rng rng(T + V + C);
    std::vector<int32_t> tok(T);
    for (auto& t : tok) t = int32_t(rng.below(V));
    const auto dout = randn(size_t(T) * C, rng), table0 = randn(size_t(V) * C, rng);
    auto fast = table0, ref = table0;
    embedding_backward(fast.data(), dout.data(), tok.data(), T, V, C);
    ref::embedding_backward(ref.data(), dout.data(), tok.data(), T, V, C);
    for (int v = 0; v < V; ++v)
      for (int c = 0; c < C; ++c) {
        double mag = std::abs(table0[v * C + c]), n = 1;
        for (int t = 0; t < T; ++t)
          if (tok[t] == v) mag += std::abs(dout[t * C + c]), ++n;
        ASSERT_LE(std::abs(double(fast[v * C + c]) - ref[v * C + c]), (n + 1) * kEps * mag)
            << "T " << T << " V " << V << " C " << C << " at (" << v << ", " << c << ")";
      }
    // Exact check of the scatter on the ref: dtable[v] - table0[v] = Σ_{t: tok t = v} dout[t].
    double s = 0;
    for (int t = 0; t < T; ++t) s += tok[t] == tok[0] ? dout[t * C] : 0.0;
    EXPECT_NEAR(ref[tok[0] * C] - table0[tok[0] * C], s, 4 * kEps * (std::abs(s) + std::abs(table0[tok[0] * C]) + T));
  }
  std::vector<float> t(4), d(2);
  const int32_t bad[] = {0, 2};
  EXPECT_THROW(embedding_backward(t.data(), d.data(), bad, 2, 2, 1), Error);
  Rng rng(3);
  std::vector<int32_t> tok(300);
  for (auto& e : tok) e = int32_t(rng.below(50));
  const auto dout = randn(300 * 333, rng);
  expect_same_bits_across_threads([&] {
    std::vector<float> tab(50 * 333, 0.5f);
    embedding_backward(tab.data(), dout.data(), tok.data(), 300, 50, 333);
    return tab;
  }, "embedding_backward");
}

// ---- RMSNorm ----

struct Norm {
  int T, C;
  std::vector<float> x, w, dout, rstd, dx0, dw0;
};

Norm make_norm(int T, int C, uint64_t seed) {
  Rng rng(seed);
  Norm n{T, C, randn(size_t(T) * C, rng), randn(C, rng), randn(size_t(T) * C, rng), std::vector<float>(T),
         randn(size_t(T) * C, rng), randn(C, rng)};
  std::vector<float> out(n.x.size());
  ref::rmsnorm_forward(out.data(), n.rstd.data(), n.x.data(), n.w.data(), T, C, 1e-5f);
  return n;
}

TEST(RmsNormBackward, FastMatchesRefOnAwkwardShapes) {
  uint64_t seed = 1;
  for (int T : {1, 7, 33, 100})
    for (int C : {1, 7, 33, 100, 384, 777}) {
      const Norm n = make_norm(T, C, seed++);
      auto dx = n.dx0, dw = n.dw0, rdx = n.dx0, rdw = n.dw0;
      rmsnorm_backward(dx.data(), dw.data(), n.dout.data(), n.x.data(), n.w.data(), n.rstd.data(), T, C, 1e-5f);
      ref::rmsnorm_backward(rdx.data(), rdw.data(), n.dout.data(), n.x.data(), n.w.data(), n.rstd.data(), T, C,
                            1e-5f);
      for (int t = 0; t < T; ++t) {
        const double r = n.rstd[t];
        double dot = 0;
        for (int c = 0; c < C; ++c) dot += std::abs(double(n.dout[t * C + c]) * n.w[c] * n.x[t * C + c]);
        for (int c = 0; c < C; ++c) {
          const double terms = std::abs(r * n.w[c] * n.dout[t * C + c]) + r * r * r / C * std::abs(n.x[t * C + c]) * dot;
          const double bound = (C + 8) * kEps * terms + 2 * kEps * std::abs(n.dx0[t * C + c]);
          ASSERT_LE(std::abs(double(dx[t * C + c]) - rdx[t * C + c]), bound) << "dx T " << T << " C " << C;
        }
      }
      for (int c = 0; c < C; ++c) {
        double mag = std::abs(n.dw0[c]);
        for (int t = 0; t < T; ++t) mag += std::abs(double(n.dout[t * C + c]) * n.x[t * C + c] * n.rstd[t]);
        ASSERT_LE(std::abs(double(dw[c]) - rdw[c]), (T + 4) * kEps * mag) << "dw T " << T << " C " << C;
      }
    }
  const Norm n = make_norm(100, 777, 99);
  expect_same_bits_across_threads([&] {
    auto dx = n.dx0, dw = n.dw0;
    rmsnorm_backward(dx.data(), dw.data(), n.dout.data(), n.x.data(), n.w.data(), n.rstd.data(), 100, 777, 1e-5f);
    dx.insert(dx.end(), dw.begin(), dw.end());
    return dx;
  }, "rmsnorm_backward");
}

double rmsnorm_fd(const Norm& n0, double f) {
  Norm n = n0;
  const int T = n.T, C = n.C;
  const double eps = 1e-5;
  std::vector<double> x(n.x.begin(), n.x.end()), w(n.w.begin(), n.w.end());
  for (int t = 0; t < T; ++t) {  // rstd from the double x, rounded to f32 as the forward stores it
    double ss = 0;
    for (int c = 0; c < C; ++c) ss += x[t * C + c] * x[t * C + c];
    n.rstd[t] = float(1.0 / std::sqrt(ss / C + eps));
  }
  std::vector<float> dx(x.size(), 0.0f), dw(C, 0.0f);
  ref::rmsnorm_backward(dx.data(), dw.data(), n.dout.data(), n.x.data(), n.w.data(), n.rstd.data(), T, C, float(eps));
  auto L = [&](double* mag) {
    double l = 0;
    *mag = 0;
    for (int t = 0; t < T; ++t) {
      double ss = 0;
      for (int c = 0; c < C; ++c) ss += x[t * C + c] * x[t * C + c];
      const double r = 1.0 / std::sqrt(ss / C + eps);
      for (int c = 0; c < C; ++c) {
        const double term = n.dout[t * C + c] * x[t * C + c] * r * w[c];
        l += term, *mag += std::abs(term);
      }
    }
    return l;
  };
  // rstd rounded to f32 (eps/2 relative) enters dx as r and r³: 2·eps of the terms.
  auto dx_extra = [&](size_t i) {
    const int t = int(i / C);
    double dot = 0;
    for (int c = 0; c < C; ++c) dot += std::abs(double(n.dout[t * C + c]) * n.w[c] * n.x[t * C + c]);
    const double r = n.rstd[t];
    return 2 * kEps * (std::abs(r * n.w[i % C] * n.dout[i]) + r * r * r / C * std::abs(n.x[i]) * dot);
  };
  auto dw_extra = [&](size_t c) {
    double m = 0;
    for (int t = 0; t < T; ++t) m += std::abs(double(n.dout[t * C + c]) * n.x[t * C + c] * n.rstd[t]);
    return 2 * kEps * m;
  };
  return std::max(fd_check(x, L, dx, dx_extra, f), fd_check(w, L, dw, dw_extra, f));
}

TEST(RmsNormBackward, RefMatchesCentralDifferences) {
  for (auto [T, C] : {std::pair{1, 1}, {2, 3}, {3, 7}}) {
    const Norm n = make_norm(T, C, 40 + C);
    EXPECT_LE(rmsnorm_fd(n, 1.0), 1.0) << "T " << T << " C " << C;
    if (C > 1) {
      EXPECT_GT(rmsnorm_fd(n, 1.0 + 1e-3), 1.0) << "T " << T << " C " << C;
    }
  }
}

// ---- RoPE ----

TEST(RopeBackward, FastMatchesRefAndUndoesTheForward) {
  for (RopeLayout layout : {RopeLayout::kNorm, RopeLayout::kNeox})
    for (auto [T, H, D] : {std::tuple{1, 1, 2}, {7, 3, 8}, {33, 6, 40}, {64, 6, 64}}) {
      Rng rng(T * H + D);
      std::vector<int32_t> pos(T);
      for (auto& p : pos) p = int32_t(rng.below(5000));
      const auto g = randn(size_t(T) * H * D, rng);
      auto fast = g, ref = g;
      rope_backward(fast.data(), pos.data(), T, H, D, layout, 10000.0f);
      ref::rope_backward(ref.data(), pos.data(), T, H, D, layout, 10000.0f);
      for (size_t i = 0; i < g.size(); ++i) {
        const size_t row = i / D * D, k = i % D, half = D / 2;
        const size_t pair = layout == RopeLayout::kNorm ? (k ^ 1) : (k < half ? k + half : k - half);
        const double bound = 4 * kEps * (std::abs(g[i]) + std::abs(g[row + pair]));
        ASSERT_LE(std::abs(double(fast[i]) - ref[i]), bound) << "T " << T << " H " << H << " D " << D << " at " << i;
      }
      // A rotation's transpose is its inverse: forward then backward gives the input back.
      auto round = g;
      rope_forward(round.data(), pos.data(), T, H, D, layout, 10000.0f);
      rope_backward(round.data(), pos.data(), T, H, D, layout, 10000.0f);
      for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(round[i], g[i], 8 * kEps * (std::abs(g[i]) + 3));
    }
  Rng rng(4);
  std::vector<int32_t> pos(100);
  for (auto& p : pos) p = int32_t(rng.below(3000));
  const auto g = randn(100 * 6 * 64, rng);
  expect_same_bits_across_threads([&] {
    auto x = g;
    rope_backward(x.data(), pos.data(), 100, 6, 64, RopeLayout::kNeox, 10000.0f);
    return x;
  }, "rope_backward");
}

TEST(RopeBackward, RefMatchesCentralDifferences) {
  for (RopeLayout layout : {RopeLayout::kNorm, RopeLayout::kNeox}) {
    const int T = 3, H = 2, D = 6;
    Rng rng(8);
    const int32_t pos[] = {0, 5, 17};
    const auto r = randn(T * H * D, rng);
    auto g = r;
    ref::rope_backward(g.data(), pos, T, H, D, layout, 100.0f);
    std::vector<double> x(T * H * D);
    for (auto& e : x) e = rng.normal();
    auto L = [&](double* mag) {  // Σ r ⊙ rope(x), rotated in double
      double l = 0;
      *mag = 0;
      for (int t = 0; t < T; ++t)
        for (int h = 0; h < H; ++h)
          for (int i = 0; i < D / 2; ++i) {
            const double a = double(pos[t]) * std::pow(100.0, -2.0 * i / D);
            const int base = (t * H + h) * D;
            const int i0 = base + (layout == RopeLayout::kNorm ? 2 * i : i);
            const int i1 = base + (layout == RopeLayout::kNorm ? 2 * i + 1 : i + D / 2);
            const double u = x[i0] * std::cos(a) - x[i1] * std::sin(a), v = x[i0] * std::sin(a) + x[i1] * std::cos(a);
            l += r[i0] * u + r[i1] * v, *mag += std::abs(r[i0] * u) + std::abs(r[i1] * v);
          }
      return l;
    };
    auto extra = [&](size_t i) { return 2 * kEps * (std::abs(r[i]) + std::abs(r[i ^ 1]) + std::abs(r[(i + D / 2) % D + i / D * D])); };
    EXPECT_LE(fd_check(x, L, g, extra, 1.0), 1.0);
    EXPECT_GT(fd_check(x, L, g, extra, 1.0 + 1e-3), 1.0);
  }
}

// ---- SwiGLU ----

TEST(SwigluBackward, FastMatchesRefOnAwkwardSizes) {
  for (int64_t n : {1, 15, 17, 4097, 100003}) {
    Rng rng(n);
    auto gate = randn(n, rng, 4.0), up = randn(n, rng), dout = randn(n, rng);
    gate[0] = 30.0f;
    if (n > 1) gate[1] = -30.0f;
    std::vector<float> dg(n), du(n), rg(n), ru(n);
    swiglu_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), n);
    ref::swiglu_backward(rg.data(), ru.data(), dout.data(), gate.data(), up.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double g = gate[i], s = 1 / (1 + std::exp(-g)), dus = std::abs(dout[i] * up[i] * s);
      ASSERT_LE(std::abs(double(dg[i]) - rg[i]), (16 + 2 * std::abs(g)) * kEps * dus * (1 + std::abs(g) * (1 - s)))
          << "dgate n " << n << " at " << i << " gate " << g;
      ASSERT_LE(std::abs(double(du[i]) - ru[i]), 8 * kEps * std::abs(dout[i] * g * s)) << "dup n " << n << " at " << i;
    }
  }
  Rng rng(5);
  const auto gate = randn(100003, rng), up = randn(100003, rng), dout = randn(100003, rng);
  expect_same_bits_across_threads([&] {
    std::vector<float> dg(100003), du(100003);
    swiglu_backward(dg.data(), du.data(), dout.data(), gate.data(), up.data(), 100003);
    dg.insert(dg.end(), du.begin(), du.end());
    return dg;
  }, "swiglu_backward");
}

TEST(SwigluBackward, RefMatchesCentralDifferences) {
  Rng rng(6);
  const int n = 9;
  const auto r = randn(n, rng);
  std::vector<double> gu(2 * n);  // gate then up
  for (auto& e : gu) e = rng.normal() * 3;
  std::vector<float> gate(gu.begin(), gu.begin() + n), up(gu.begin() + n, gu.end()), dg(n), du(n);
  for (int i = 0; i < n; ++i) gu[i] = gate[i], gu[n + i] = up[i];
  ref::swiglu_backward(dg.data(), du.data(), r.data(), gate.data(), up.data(), n);
  std::vector<float> g(dg);
  g.insert(g.end(), du.begin(), du.end());
  auto L = [&](double* mag) {
    double l = 0;
    *mag = 0;
    for (int i = 0; i < n; ++i) {
      const double t = r[i] * gu[i] / (1 + std::exp(-gu[i])) * gu[n + i];
      l += t, *mag += std::abs(t);
    }
    return l;
  };
  EXPECT_LE(fd_check(gu, L, g, [](size_t) { return 0.0; }, 1.0), 1.0);
  EXPECT_GT(fd_check(gu, L, g, [](size_t) { return 0.0; }, 1.0 + 1e-3), 1.0);
}

}  // namespace
}  // namespace unmask
