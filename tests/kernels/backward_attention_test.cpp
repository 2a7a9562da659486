// attention_backward: (a) ref::attention_backward against central differences of a double-precision forward on
// tiny shapes; (b) the fast kernel against the ref on awkward shapes, GQA groups and every mask kind, with a bound
// derived per element; (c) 1 thread and 2 threads give the same bits; (d) both comparisons reject a result scaled
// by 1 + 1e-3, so they can fail.
//
// Bounds. (a) The ref works in double from the f32 lse and out the forward stored (relative rounding eps/2 each):
// a lse error δ scales every P of its row by e^δ, an error in Dᵢ = dOᵢ·Oᵢ of eps·|Dᵢ| shifts dS by P·that; so each
// term P·(|dP| + |D|)·|x| of a gradient is off by at most eps·(2 + max|lse|) of itself. Central differences add a
// truncation error estimated from the step (|FD(h) - FD(2h)| is about 3× the error of FD(h)) and the rounding of L,
// eps_d·Σ|r·out|/h. (b) The fast kernel's score is a dot product of length D (error δs = (D+2)·eps·scale·Σ|q k|),
// which moves P by a relative 2δs; exp and the lse shift add (|lse| + 4)·eps; dP and Dᵢ are dot products of
// length D; the sums over n keys or (query, head) pairs add n·eps of the summed magnitudes.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/backward.h"

namespace unmask {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();
constexpr double kEpsD = std::numeric_limits<double>::epsilon();

std::vector<float> randn(size_t n, Rng& rng) {
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.normal());
  return v;
}

enum class Mask { kCausal, kBidirectional, kBlockCausal5, kBd3lm, kCacheOffset };
const char* mask_name(Mask m) {
  const char* names[] = {"causal", "bidirectional", "block-causal-5", "bd3lm-xt+x0", "cache-offset"};
  return names[int(m)];
}

// BD3-LM training (block b, Tq = Tk = 2L, x_t then x_0): a query of x_t in block β sees its own block of x_t and
// the x_0 blocks before β (two ranges); a query of x_0 sees x_0 block-causally.
KeySpan bd3lm_span(int i, int L, int b) {
  if (i < L) {
    const int beta = i / b;
    return {beta * b, std::min(L, (beta + 1) * b), L, L + beta * b};
  }
  return {L, L + std::min(L, ((i - L) / b + 1) * b), 0, 0};
}

std::vector<KeySpan> make_spans(Mask mask, int Tq, int Tk) {
  std::vector<KeySpan> s(Tq);
  for (int i = 0; i < Tq; ++i) {
    const int p = Tk - Tq + i;
    switch (mask) {
      case Mask::kCausal:
      case Mask::kCacheOffset: s[i] = {0, p + 1, 0, 0}; break;
      case Mask::kBidirectional: s[i] = {0, Tk, 0, 0}; break;
      case Mask::kBlockCausal5: s[i] = {0, std::min(Tk, (p / 5 + 1) * 5), 0, 0}; break;
      case Mask::kBd3lm: s[i] = bd3lm_span(i, Tq / 2, 4); break;
    }
    if (s[i].begin1 == s[i].end1) s[i].begin1 = s[i].end1 = 0;
  }
  return s;
}

bool sees(const KeySpan& s, int j) { return (j >= s.begin0 && j < s.end0) || (j >= s.begin1 && j < s.end1); }

struct Problem {
  int Tq, Tk, Hq, Hkv, D;
  Mask mask;
  float scale;
  std::vector<float> q, k, v, dout, out, lse, dk0, dv0;  // dk0, dv0: what dk, dv hold before (+=)
  std::vector<KeySpan> spans;
  std::string name() const {
    return std::string(mask_name(mask)) + " Tq " + std::to_string(Tq) + " Tk " + std::to_string(Tk) + " Hq " +
           std::to_string(Hq) + " Hkv " + std::to_string(Hkv) + " D " + std::to_string(D);
  }
};

Problem make_problem(int Tq, int Tk, int Hq, int Hkv, int D, Mask mask, uint64_t seed) {
  Rng rng(seed);
  Problem p{Tq, Tk, Hq, Hkv, D, mask, float(2.0 / std::sqrt(double(D))), {}, {}, {}, {}, {}, {}, {}, {}, {}};
  const size_t nq = size_t(Tq) * Hq * D, nk = size_t(Tk) * Hkv * D;
  p.q = randn(nq, rng), p.k = randn(nk, rng), p.v = randn(nk, rng), p.dout = randn(nq, rng);
  p.dk0 = randn(nk, rng), p.dv0 = randn(nk, rng);
  p.spans = make_spans(mask, Tq, Tk);
  p.out.resize(nq), p.lse.resize(size_t(Tq) * Hq);
  ref::attention_forward(p.out.data(), p.lse.data(), p.q.data(), p.k.data(), p.v.data(), p.spans.data(), Tq, Tk, Hq,
                         Hkv, D, p.scale);
  return p;
}

struct Grads {
  std::vector<float> dq, dk, dv;
};

template <typename F>
Grads run(const Problem& p, F backward) {
  Grads g{std::vector<float>(p.q.size(), NAN), p.dk0, p.dv0};
  backward(g.dq.data(), g.dk.data(), g.dv.data(), p.dout.data(), p.q.data(), p.k.data(), p.v.data(), p.out.data(),
           p.lse.data(), p.spans.data(), p.Tq, p.Tk, p.Hq, p.Hkv, p.D, p.scale);
  return g;
}

// Per-element error bounds of the fast kernel against the exact gradient (see the top of the file).
Grads fast_bounds(const Problem& p) {
  Grads b{std::vector<float>(p.q.size()), std::vector<float>(p.k.size()), std::vector<float>(p.v.size())};
  std::vector<double> mq(p.q.size(), 0.0), mk(p.k.size(), 0.0), mv(p.v.size(), 0.0);
  const int D = p.D, pairs = p.Tq * (p.Hq / p.Hkv);
  for (int t = 0; t < p.Tq; ++t)
    for (int h = 0; h < p.Hq; ++h) {
      const int64_t row = (int64_t(t) * p.Hq + h) * D, g = h / (p.Hq / p.Hkv);
      const double lse = p.lse[size_t(t) * p.Hq + h];
      double Di = 0, Dabs = 0;
      for (int c = 0; c < D; ++c) Di += double(p.dout[row + c]) * p.out[row + c], Dabs += std::abs(p.dout[row + c] * p.out[row + c]);
      int n = 0;
      for (int j = 0; j < p.Tk; ++j) n += sees(p.spans[t], j);
      for (int j = 0; j < p.Tk; ++j) {
        if (!sees(p.spans[t], j)) continue;
        const int64_t kr = (j * int64_t(p.Hkv) + g) * D;
        double s = 0, sabs = 0, dp = 0, dpabs = 0;
        for (int c = 0; c < D; ++c) {
          s += double(p.q[row + c]) * p.k[kr + c], sabs += std::abs(double(p.q[row + c]) * p.k[kr + c]);
          dp += double(p.dout[row + c]) * p.v[kr + c], dpabs += std::abs(double(p.dout[row + c]) * p.v[kr + c]);
        }
        const double P = std::exp(s * p.scale - lse);
        const double rel = 2 * (D + 2) * kEps * p.scale * sabs + (std::abs(lse) + 8 + std::max(n, pairs)) * kEps;
        const double eds = P * ((std::abs(dp) + std::abs(Di)) * rel + (D + 2) * kEps * (dpabs + Dabs));
        for (int c = 0; c < D; ++c) {
          mq[row + c] += p.scale * std::abs(p.k[kr + c]) * eds;
          mk[kr + c] += p.scale * std::abs(p.q[row + c]) * eds;
          mv[kr + c] += std::abs(p.dout[row + c]) * P * rel;
        }
      }
    }
  for (size_t i = 0; i < mq.size(); ++i) b.dq[i] = float(mq[i]);
  for (size_t i = 0; i < mk.size(); ++i) b.dk[i] = float(mk[i] + 2 * kEps * std::abs(p.dk0[i]) + 1e-30);
  for (size_t i = 0; i < mv.size(); ++i) b.dv[i] = float(mv[i] + 2 * kEps * std::abs(p.dv0[i]) + 1e-30);
  return b;
}

// Largest |got - want| / bound over one tensor (want may be perturbed by the caller); > 1 means a failure.
double worst(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& bound,
             size_t* at) {
  double w = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double r = std::abs(double(got[i]) - want[i]) / (double(bound[i]) + 2 * kEps * std::abs(want[i]) + 1e-30);
    if (!(r <= w)) w = r, *at = i;  // NaN counts as the worst
  }
  return w;
}

Grads scaled(Grads g, double f) {
  for (auto* t : {&g.dq, &g.dk, &g.dv})
    for (auto& x : *t) x = float(x * f);
  return g;
}

// Worst ratio of the three gradients; reports which one.
double compare(const Grads& got, const Grads& want, const Grads& bound, std::string* where) {
  const char* names[] = {"dq", "dk", "dv"};
  const std::vector<float>* g[] = {&got.dq, &got.dk, &got.dv};
  const std::vector<float>* w[] = {&want.dq, &want.dk, &want.dv};
  const std::vector<float>* b[] = {&bound.dq, &bound.dk, &bound.dv};
  double res = 0;
  for (int i = 0; i < 3; ++i) {
    size_t at = 0;
    const double r = worst(*g[i], *w[i], *b[i], &at);
    if (!(r <= res)) res = r, *where = std::string(names[i]) + "[" + std::to_string(at) + "]";
  }
  return res;
}

void check_fast(const Problem& p) {
  const Grads fast = run(p, attention_backward), ref = run(p, ref::attention_backward), bound = fast_bounds(p);
  std::string where;
  const double r = compare(fast, ref, bound, &where);
  ASSERT_LE(r, 1.0) << p.name() << " at " << where;
}

TEST(AttentionBackward, FastMatchesRefOnAwkwardShapesAndMasks) {
  const int heads[][2] = {{6, 2}, {8, 1}, {3, 3}};
  const Mask masks[] = {Mask::kCausal, Mask::kBidirectional, Mask::kBlockCausal5, Mask::kBd3lm, Mask::kCacheOffset};
  uint64_t seed = 1;
  for (int T : {1, 6, 33, 100})
    for (int D : {8, 40, 64})
      for (const auto& hh : heads)
        for (Mask m : masks) {
          if (m == Mask::kBd3lm && T % 2) continue;
          const int Tk = m == Mask::kCacheOffset ? T + 77 : T;
          check_fast(make_problem(T, Tk, hh[0], hh[1], D, m, seed++));
          if (HasFatalFailure()) return;
        }
}

TEST(AttentionBackward, LongerSequencesAcrossTiles) {
  check_fast(make_problem(130, 130, 6, 2, 64, Mask::kBd3lm, 101));
  check_fast(make_problem(70, 200, 8, 1, 40, Mask::kCacheOffset, 102));
  check_fast(make_problem(129, 129, 6, 2, 8, Mask::kBlockCausal5, 103));
}

TEST(AttentionBackward, SameBitsWithOneOrTwoThreads) {
  for (Mask m : {Mask::kCausal, Mask::kBd3lm}) {
    const Problem p = make_problem(150, 150, 6, 2, 40, m, 7);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    const Grads one = run(p, attention_backward);
    omp_set_num_threads(2);
    const Grads two = run(p, attention_backward);
    omp_set_num_threads(saved);
    for (auto [a, b] : {std::pair{&one.dq, &two.dq}, {&one.dk, &two.dk}, {&one.dv, &two.dv}})
      for (size_t i = 0; i < a->size(); ++i) ASSERT_EQ((*a)[i], (*b)[i]) << mask_name(m) << " element " << i;
  }
}

TEST(AttentionBackward, ComparisonRejectsAPerturbedGradient) {
  const Problem p = make_problem(33, 33, 6, 2, 40, Mask::kBd3lm, 9);
  const Grads fast = run(p, attention_backward), ref = run(p, ref::attention_backward), bound = fast_bounds(p);
  std::string where;
  EXPECT_LE(compare(fast, ref, bound, &where), 1.0) << where;
  EXPECT_GT(compare(fast, scaled(ref, 1 + 1e-3), bound, &where), 1.0);
}

// ---- central differences ----

// L = Σ r ⊙ out in double, from the inputs as doubles; also returns Σ|r ⊙ out| (for the rounding bound).
double loss(const Problem& p, const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
            const std::vector<double>& r, double* mag) {
  double L = 0;
  *mag = 0;
  std::vector<double> s(p.Tk);
  for (int t = 0; t < p.Tq; ++t)
    for (int h = 0; h < p.Hq; ++h) {
      const int64_t row = (int64_t(t) * p.Hq + h) * p.D, g = h / (p.Hq / p.Hkv);
      double m = -INFINITY, sum = 0;
      for (int j = 0; j < p.Tk; ++j) {
        s[j] = -INFINITY;
        if (!sees(p.spans[t], j)) continue;
        double dot = 0;
        for (int c = 0; c < p.D; ++c) dot += q[row + c] * k[(j * p.Hkv + g) * p.D + c];
        m = std::max(m, s[j] = dot * p.scale);
      }
      for (int j = 0; j < p.Tk; ++j) sum += std::exp(s[j] - m);
      for (int c = 0; c < p.D; ++c) {
        double o = 0;
        for (int j = 0; j < p.Tk; ++j) o += std::exp(s[j] - m) / sum * v[(j * p.Hkv + g) * p.D + c];
        L += r[row + c] * o, *mag += std::abs(r[row + c] * o);
      }
    }
  return L;
}

// Worst |ref - FD| / bound over q, k, v of a tiny problem; ref_factor scales the ref gradient (1 for the real
// check, 1 + 1e-3 for the negative control).
double central_difference_check(Problem p, double ref_factor, std::string* where) {
  std::fill(p.dk0.begin(), p.dk0.end(), 0.0f), std::fill(p.dv0.begin(), p.dv0.end(), 0.0f);
  const Grads g = run(p, ref::attention_backward);
  std::vector<double> q(p.q.begin(), p.q.end()), k(p.k.begin(), p.k.end()), v(p.v.begin(), p.v.end());
  const std::vector<double> r(p.dout.begin(), p.dout.end());  // L = Σ r ⊙ out with r = dout: dL/dout = dout
  // The f32 side: each term P·(|dP| + |D|)·|x| off by eps·(2 + |lse|) of itself; fast_bounds is a larger bound of
  // the same form (it also covers f32 arithmetic), per element.
  const Grads fb = fast_bounds(p);
  const std::vector<float>* bs[] = {&fb.dq, &fb.dk, &fb.dv};
  std::vector<double>* xs[] = {&q, &k, &v};
  const std::vector<float>* gs[] = {&g.dq, &g.dk, &g.dv};
  double res = 0;
  for (int w = 0; w < 3; ++w)
    for (size_t i = 0; i < xs[w]->size(); ++i) {
      double& x = (*xs[w])[i];
      const double x0 = x, h = 1e-4 * std::max(1.0, std::abs(x0));
      double fd[2], mag = 0, mg;
      for (int s = 0; s < 2; ++s) {
        const double hs = h * (s + 1);
        x = x0 + hs;
        const double lp = loss(p, q, k, v, r, &mg);
        x = x0 - hs;
        const double lm = loss(p, q, k, v, r, &mag);
        fd[s] = (lp - lm) / (2 * hs), mag = std::max(mag, mg);
      }
      x = x0;
      const double bound = std::abs(fd[0] - fd[1]) + 8 * kEpsD * mag / h + (*bs[w])[i];
      const double rr = std::abs(ref_factor * (*gs[w])[i] - fd[0]) / bound;
      if (!(rr <= res)) res = rr, *where = std::string("qkv").substr(w, 1) + "[" + std::to_string(i) + "]";
    }
  return res;
}

TEST(AttentionBackward, RefMatchesCentralDifferences) {
  struct Tiny { int Tq, Tk, Hq, Hkv, D; Mask m; };
  const Tiny cases[] = {{4, 4, 2, 1, 3, Mask::kCausal}, {3, 3, 2, 2, 2, Mask::kBidirectional},
                        {8, 8, 2, 1, 3, Mask::kBd3lm},  {2, 5, 3, 1, 2, Mask::kCacheOffset},
                        {6, 6, 1, 1, 2, Mask::kBlockCausal5}};
  uint64_t seed = 50;
  for (const auto& c : cases) {
    const Problem p = make_problem(c.Tq, c.Tk, c.Hq, c.Hkv, c.D, c.m, seed++);
    std::string where;
    EXPECT_LE(central_difference_check(p, 1.0, &where), 1.0) << p.name() << " at " << where;
    EXPECT_GT(central_difference_check(p, 1 + 1e-3, &where), 1.0) << p.name() << ": a 1e-3 error went unseen";
  }
}

}  // namespace
}  // namespace unmask
