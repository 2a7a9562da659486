// attention_forward against ref::attention_forward on awkward shapes and every mask kind. The tolerance is derived
// per output element: each score is a dot product of length D (error ≤ (D+2)·eps·scale·Σ|q k|), a score error δ
// moves the output by at most 2·max δ·Σ p|v|; the f32 sums over n visible keys (softmax denominator and P·V) add
// n·eps·Σ p|v| each; exp and the final division a few eps more.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/attention.h"
#include "attention_cases.h"

namespace unmask {
namespace {

using namespace attention_test;

constexpr double kEps = std::numeric_limits<float>::epsilon();

// Checks out/lse of one (t, h) against ref with the derived bound.
void check_row(const Case& c, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
               const KeySpan& sp, int t, int h, const float* out, const float* ref, float lse, float ref_lse,
               float scale) {
  const int g = h / (c.Hq / c.Hkv), D = c.D;
  std::vector<double> s, ds;
  std::vector<int> keys;
  for (int j = 0; j < c.Tk; ++j) {
    if (!sees(sp, j)) continue;
    double dot = 0, mag = 0;
    for (int d = 0; d < D; ++d) {
      double prod = double(q[(int64_t(t) * c.Hq + h) * D + d]) * k[(int64_t(j) * c.Hkv + g) * D + d];
      dot += prod, mag += std::abs(prod);
    }
    s.push_back(dot * scale), ds.push_back((D + 2) * kEps * scale * mag), keys.push_back(j);
  }
  double m = -INFINITY, dmax = 0, sum = 0;
  for (size_t i = 0; i < s.size(); ++i) m = std::max(m, s[i]), dmax = std::max(dmax, ds[i]);
  double spread = 0;
  for (double x : s) sum += std::exp(x - m), spread = std::max(spread, m - x);
  const double n = double(keys.size());
  const double rel = (2 * n + 16) * kEps + 2 * dmax + 2 * kEps * spread;
  for (int d = 0; d < D; ++d) {
    double a = 0;
    for (size_t i = 0; i < keys.size(); ++i)
      a += std::exp(s[i] - m) / sum * std::abs(v[(int64_t(keys[i]) * c.Hkv + g) * D + d]);
    ASSERT_LE(std::abs(double(out[d]) - ref[d]), rel * a + 1e-30)
        << mask_name(c.mask) << " Tq " << c.Tq << " Tk " << c.Tk << " Hq " << c.Hq << " Hkv " << c.Hkv << " D " << D
        << " at t " << t << " h " << h << " d " << d;
  }
  const double lse_bound = dmax + (n + 4) * kEps + 2 * kEps * std::abs(ref_lse);
  ASSERT_LE(std::abs(double(lse) - ref_lse), lse_bound) << mask_name(c.mask) << " lse at t " << t << " h " << h;
}

void run_case(const Case& c, uint64_t seed) {
  Rng rng(seed);
  auto q = randn(size_t(c.Tq) * c.Hq * c.D, rng);
  auto k = randn(size_t(c.Tk) * c.Hkv * c.D, rng), v = randn(size_t(c.Tk) * c.Hkv * c.D, rng);
  auto spans = make_spans(c.mask, c.Tq, c.Tk);
  const float scale = float(1.0 / std::sqrt(double(c.D))) * 2.0f;  // sharper than 1/sqrt(D): a peakier softmax
  const size_t rows = size_t(c.Tq) * c.Hq;
  std::vector<float> out(rows * c.D, NAN), ref(rows * c.D), lse(rows, NAN), ref_lse(rows);
  attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), spans.data(), c.Tq, c.Tk, c.Hq, c.Hkv,
                    c.D, scale);
  ref::attention_forward(ref.data(), ref_lse.data(), q.data(), k.data(), v.data(), spans.data(), c.Tq, c.Tk, c.Hq,
                         c.Hkv, c.D, scale);
  for (int t = 0; t < c.Tq; ++t)
    for (int h = 0; h < c.Hq; ++h) {
      const size_t r = size_t(t) * c.Hq + h;
      check_row(c, q, k, v, spans[t], t, h, &out[r * c.D], &ref[r * c.D], lse[r], ref_lse[r], scale);
      if (::testing::Test::HasFatalFailure()) return;
    }
}

TEST(Attention, MatchesRefOnAwkwardShapesAndMasks) {
  const int heads[][2] = {{6, 2}, {4, 4}, {8, 1}};
  const Mask masks[] = {Mask::kCausal,   Mask::kBidirectional, Mask::kBlockCausal5,
                        Mask::kTwoRange, Mask::kWideGap,       Mask::kCacheOffset};
  uint64_t seed = 1;
  for (int T : {1, 3, 7, 33, 100})
    for (int D : {16, 40, 64, 72})
      for (const auto& hh : heads)
        for (Mask m : masks) {
          const int Tk = m == Mask::kCacheOffset ? T + 13 : (m == Mask::kWideGap ? T + 190 : T);
          run_case({T, Tk, hh[0], hh[1], D, m}, seed++);
          if (HasFatalFailure()) return;
        }
}

TEST(Attention, DecodeOverLongCache) {
  for (int Tk : {1, 63, 64, 65, 300, 1030}) run_case({1, Tk, 6, 2, 64, Mask::kCacheOffset}, 100 + Tk);
  run_case({2, 1030, 8, 1, 40, Mask::kTwoRange}, 7);
}

TEST(Attention, BlockOfQueriesOverCache) { run_case({32, 700, 4, 2, 64, Mask::kBlockCausal5}, 11); }

// Keys past every query's span (an unfilled cache tail) are never read: NaN there must not reach the output.
TEST(Attention, IgnoresKeysOutsideEverySpan) {
  const int Tq = 40, Tk = 100, filled = 60, H = 2, D = 24;
  Rng rng(5);
  auto q = randn(size_t(Tq) * H * D, rng), k = randn(size_t(Tk) * H * D, rng), v = randn(size_t(Tk) * H * D, rng);
  for (size_t i = size_t(filled) * H * D; i < k.size(); ++i) k[i] = v[i] = NAN;
  std::vector<KeySpan> spans(Tq, KeySpan{0, filled, 0, 0});
  std::vector<float> a(size_t(Tq) * H * D), b(a.size());
  attention_forward(a.data(), nullptr, q.data(), k.data(), v.data(), spans.data(), Tq, Tk, H, H, D, 0.2f);
  attention_forward(b.data(), nullptr, q.data(), k.data(), v.data(), spans.data(), Tq, filled, H, H, D, 0.2f);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "element " << i;
}

TEST(Attention, SameBitsWhateverTheThreadCount) {
  const int Tq = 77, Tk = 77, H = 4, D = 64;
  Rng rng(9);
  auto q = randn(size_t(Tq) * H * D, rng), k = randn(size_t(Tk) * H * D, rng), v = randn(size_t(Tk) * H * D, rng);
  auto spans = make_spans(Mask::kCausal, Tq, Tk);
  std::vector<float> one(q.size()), two(q.size()), l1(Tq * H), l2(Tq * H);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  attention_forward(one.data(), l1.data(), q.data(), k.data(), v.data(), spans.data(), Tq, Tk, H, H, D, 0.125f);
  omp_set_num_threads(3);
  attention_forward(two.data(), l2.data(), q.data(), k.data(), v.data(), spans.data(), Tq, Tk, H, H, D, 0.125f);
  omp_set_num_threads(saved);
  EXPECT_EQ(one, two);
  EXPECT_EQ(l1, l2);
}

TEST(Attention, RejectsBadSpans) {
  std::vector<float> q(4 * 8), k(4 * 8), v(4 * 8), out(4 * 8);
  auto run = [&](KeySpan s) {
    std::vector<KeySpan> spans(4, KeySpan{0, 4, 0, 0});
    spans[2] = s;
    attention_forward(out.data(), nullptr, q.data(), k.data(), v.data(), spans.data(), 4, 4, 1, 1, 8, 1.0f);
  };
  EXPECT_THROW(run({0, 5, 0, 0}), Error);   // past Tk
  EXPECT_THROW(run({0, 0, 0, 0}), Error);   // no key
  EXPECT_THROW(run({0, 3, 2, 4}), Error);   // overlapping
  EXPECT_THROW(run({-1, 2, 0, 0}), Error);  // negative
  EXPECT_NO_THROW(run({0, 1, 3, 4}));
  EXPECT_NO_THROW(run({0, 0, 3, 4}));  // empty first range
  try {
    run({0, 9, 0, 0});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("query 2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace unmask
