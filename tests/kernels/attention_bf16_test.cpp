// attention_forward_bf16 against its twin ref::attention_forward_bf16 (the double loop over bf16-rounded q, k, v) on
// awkward shapes and every mask kind, and against the f32 kernel. Tolerances, per output element (t, h, d), from
// the arithmetic of the fast kernel on the rounded inputs (eps = 2^-23 for f32, u = 2^-8 the unit roundoff of bf16,
// whose significand has 8 bits):
//  - a score is Σ over D products of bf16 values (each exact in f32), accumulated by vdpbf16ps with one f32 rounding
//    per product, then times scale: δ_j ≤ (D + 2)·eps·scale·Σ_d |q k|. A score error δ moves the output by at most
//    2·max δ·Σ p|v| (p the exact softmax weights).
//  - the f32 sums over the n visible keys (softmax denominator and P·V) add n·eps·Σ p|v| each; exp, the rescales
//    and the final division a few eps more ((2n + 16)·eps in all, as in the f32 kernel's test), and the exp of
//    large negative shifts 2·eps·spread.
//  - P is rounded to bf16 for P·V (the denominator sums the unrounded p): relative u per term of Σ p_j v_j, at most
//    u·Σ p|v|.
//  - vdpbf16ps flushes subnormal inputs and results: (n + D + 2)·2^-126·(1 + max|v|) absolute, negligible.
// So |fast - twin| ≤ ((2n + 16)·eps + 2·max δ + 2·eps·spread + u)·Σ p|v| + that absolute term. The lse uses
// unrounded p: |Δlse| ≤ max δ + (n + 4)·eps + 2·eps·|lse|.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/attention.h"
#include "attention_cases.h"
#include "unmask/tensor/dtype.h"

namespace unmask {
namespace {

using namespace attention_test;

constexpr double kEps = std::numeric_limits<float>::epsilon();  // 2^-23
constexpr double kU = 1.0 / 256;                                 // bf16 unit roundoff, 2^-8
constexpr double kTiny = 1.1754943508222875e-38;                 // 2^-126, the flush threshold

std::vector<float> to_bf16(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(x[i]));  // no subnormals in randn data
  return r;
}

std::string describe(const Case& c) {
  return std::string(mask_name(c.mask)) + " Tq " + std::to_string(c.Tq) + " Tk " + std::to_string(c.Tk) + " Hq " +
         std::to_string(c.Hq) + " Hkv " + std::to_string(c.Hkv) + " D " + std::to_string(c.D);
}

// How far a result may be from the exact attention of (q, k, v) for one row (t, h): out (D) and lse.
struct RowBound {
  std::vector<double> out;
  double lse;
};

// score_rel: a score's error relative to scale·Σ|q k|; pv_rel: extra relative error of P·V (relative to Σ p|v|);
// sums: how many f32 softmax/P·V evaluations contribute (1 for one kernel, 2 when comparing two kernels).
RowBound row_bound(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                   const std::vector<float>& v, const KeySpan& sp, int t, int h, float scale, double score_rel,
                   double pv_rel, double sums, double ref_lse) {
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
    s.push_back(dot * scale), ds.push_back(score_rel * scale * mag + (D + 2) * kTiny * scale), keys.push_back(j);
  }
  double m = -INFINITY, dmax = 0, sum = 0, spread = 0, vmax = 0;
  for (size_t i = 0; i < s.size(); ++i) m = std::max(m, s[i]), dmax = std::max(dmax, ds[i]);
  for (double x : s) sum += std::exp(x - m), spread = std::max(spread, m - x);
  const double n = double(keys.size());
  const double rel = sums * ((2 * n + 16) * kEps + 2 * kEps * spread) + 2 * dmax + pv_rel;
  std::vector<double> p(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) p[i] = std::exp(s[i] - m) / sum;
  RowBound b{std::vector<double>(D), 0};
  for (int d = 0; d < D; ++d) {
    double a = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      const double vv = std::abs(v[(int64_t(keys[i]) * c.Hkv + g) * D + d]);
      a += p[i] * vv, vmax = std::max(vmax, vv);
    }
    b.out[d] = rel * a * (1 + 4 * dmax + 2 * kU) + (n + D + 2) * kTiny * (1 + vmax);
  }
  b.lse = dmax + sums * ((n + 4) * kEps + 2 * kEps * std::abs(ref_lse));
  return b;
}

struct Inputs {
  std::vector<float> q, k, v;  // the inputs
  std::vector<KeySpan> spans;
  float scale;
};

Inputs make_run(const Case& c, uint64_t seed) {
  Rng rng(seed);
  Inputs r;
  r.q = randn(size_t(c.Tq) * c.Hq * c.D, rng);
  r.k = randn(size_t(c.Tk) * c.Hkv * c.D, rng), r.v = randn(size_t(c.Tk) * c.Hkv * c.D, rng);
  r.spans = make_spans(c.mask, c.Tq, c.Tk);
  r.scale = float(1.0 / std::sqrt(double(c.D))) * 2.0f;  // sharper than 1/sqrt(D): a peakier softmax
  return r;
}

// Empty when every element of (out, lse) is within the bf16 kernel's bound of (ref, ref_lse), the twin's result;
// otherwise the first element that is not.
std::string compare_with_twin(const Case& c, const Inputs& r, const std::vector<float>& out, const std::vector<float>& lse,
                              const std::vector<float>& ref, const std::vector<float>& ref_lse) {
  const auto q = to_bf16(r.q), k = to_bf16(r.k), v = to_bf16(r.v);
  for (int t = 0; t < c.Tq; ++t)
    for (int h = 0; h < c.Hq; ++h) {
      const size_t row = size_t(t) * c.Hq + h;
      const RowBound b =
          row_bound(c, q, k, v, r.spans[t], t, h, r.scale, (c.D + 2) * kEps, kU, 1, ref_lse[row]);
      for (int d = 0; d < c.D; ++d) {
        const double err = std::abs(double(out[row * c.D + d]) - ref[row * c.D + d]);
        if (!(err <= b.out[d]))
          return describe(c) + " at t " + std::to_string(t) + " h " + std::to_string(h) + " d " + std::to_string(d) +
                 ": |" + std::to_string(out[row * c.D + d]) + " - " + std::to_string(ref[row * c.D + d]) +
                 "| > bound " + std::to_string(b.out[d]);
      }
      if (!(std::abs(double(lse[row]) - ref_lse[row]) <= b.lse))
        return describe(c) + " lse at t " + std::to_string(t) + " h " + std::to_string(h);
    }
  return {};
}

struct Outputs {
  std::vector<float> out, lse, ref, ref_lse;
};

Outputs run_both(const Case& c, const Inputs& r) {
  const size_t rows = size_t(c.Tq) * c.Hq;
  Outputs o{std::vector<float>(rows * c.D, NAN), std::vector<float>(rows, NAN), std::vector<float>(rows * c.D),
            std::vector<float>(rows)};
  attention_forward_bf16(o.out.data(), o.lse.data(), r.q.data(), r.k.data(), r.v.data(), r.spans.data(), c.Tq, c.Tk,
                         c.Hq, c.Hkv, c.D, r.scale);
  ref::attention_forward_bf16(o.ref.data(), o.ref_lse.data(), r.q.data(), r.k.data(), r.v.data(), r.spans.data(),
                              c.Tq, c.Tk, c.Hq, c.Hkv, c.D, r.scale);
  return o;
}

void run_case(const Case& c, uint64_t seed) {
  const Inputs r = make_run(c, seed);
  const Outputs o = run_both(c, r);
  const std::string bad = compare_with_twin(c, r, o.out, o.lse, o.ref, o.ref_lse);
  ASSERT_TRUE(bad.empty()) << bad;
}

TEST(AttentionBf16, MatchesTwinOnAwkwardShapesAndMasks) {
  const int heads[][2] = {{6, 2}, {8, 1}, {4, 4}};
  const Mask masks[] = {Mask::kCausal,   Mask::kBidirectional, Mask::kBlockCausal5,
                        Mask::kTwoRange, Mask::kWideGap,       Mask::kCacheOffset};
  uint64_t seed = 1;
  for (int T : {5, 33, 100, 257})
    for (int D : {16, 40, 64, 72})
      for (const auto& hh : heads) {
        if (T == 257 && hh[0] != 6) continue;  // the largest size once, to keep the suite quick
        for (Mask m : masks) {
          const int Tk = m == Mask::kCacheOffset ? T + 13 : (m == Mask::kWideGap ? T + 190 : T);
          run_case({T, Tk, hh[0], hh[1], D, m}, seed++);
          if (HasFatalFailure()) return;
        }
      }
}

TEST(AttentionBf16, OddHeadDimAndOddKeyCounts) {
  run_case({33, 33, 4, 2, 17, Mask::kBidirectional}, 21);
  run_case({40, 71, 3, 1, 9, Mask::kCacheOffset}, 22);
  run_case({32, 700, 4, 2, 64, Mask::kBlockCausal5}, 23);
}

// The comparison is not vacuous: an output element or an lse moved by twice its bound is caught.
TEST(AttentionBf16, ComparisonCatchesAPerturbedOutput) {
  const Case c{33, 33, 6, 2, 40, Mask::kCausal};
  const Inputs r = make_run(c, 31);
  Outputs o = run_both(c, r);
  ASSERT_TRUE(compare_with_twin(c, r, o.out, o.lse, o.ref, o.ref_lse).empty());
  const auto q = to_bf16(r.q), k = to_bf16(r.k), v = to_bf16(r.v);
  const int t = 20, h = 3, d = 7;
  const size_t row = size_t(t) * c.Hq + h;
  const RowBound b = row_bound(c, q, k, v, r.spans[t], t, h, r.scale, (c.D + 2) * kEps, kU, 1, o.ref_lse[row]);
  auto bad = o.out;
  bad[row * c.D + d] = float(o.ref[row * c.D + d] + 2 * b.out[d]);
  EXPECT_FALSE(compare_with_twin(c, r, bad, o.lse, o.ref, o.ref_lse).empty());
  auto bad_lse = o.lse;
  bad_lse[row] = float(o.ref_lse[row] - 2 * b.lse);
  EXPECT_FALSE(compare_with_twin(c, r, o.out, bad_lse, o.ref, o.ref_lse).empty());
  // The bound is a bf16 one: about u·Σ p|v|, far below an f32 input's own size.
  EXPECT_LT(b.out[d], 0.02);
}

// Close to the f32 kernel on the unrounded inputs: their difference is bounded by the rounding of q, k (score error
// (2u + u²)·scale·Σ|q k|), of v and of P (u·Σ p|v| each), plus both kernels' f32 arithmetic.
TEST(AttentionBf16, StaysCloseToTheF32Kernel) {
  uint64_t seed = 40;
  for (const Case& c : {Case{100, 100, 6, 2, 64, Mask::kBidirectional}, Case{257, 257, 4, 4, 40, Mask::kCausal},
                        Case{33, 46, 8, 1, 72, Mask::kCacheOffset}, Case{100, 100, 6, 2, 16, Mask::kTwoRange}}) {
    const Inputs r = make_run(c, seed++);
    const size_t rows = size_t(c.Tq) * c.Hq;
    std::vector<float> a(rows * c.D), b(rows * c.D), la(rows), lb(rows), ref(rows * c.D), ref_lse(rows);
    attention_forward_bf16(a.data(), la.data(), r.q.data(), r.k.data(), r.v.data(), r.spans.data(), c.Tq, c.Tk, c.Hq,
                           c.Hkv, c.D, r.scale);
    attention_forward(b.data(), lb.data(), r.q.data(), r.k.data(), r.v.data(), r.spans.data(), c.Tq, c.Tk, c.Hq,
                      c.Hkv, c.D, r.scale);
    ref::attention_forward(ref.data(), ref_lse.data(), r.q.data(), r.k.data(), r.v.data(), r.spans.data(), c.Tq,
                           c.Tk, c.Hq, c.Hkv, c.D, r.scale);
    const double score_rel = 2 * kU + kU * kU + 2 * (c.D + 2) * kEps * (1 + kU) * (1 + kU);
    double worst = 0;  // largest |a - b| / Σ p|v| seen, reported
    for (int t = 0; t < c.Tq; ++t)
      for (int h = 0; h < c.Hq; ++h) {
        const size_t row = size_t(t) * c.Hq + h;
        const RowBound bd = row_bound(c, r.q, r.k, r.v, r.spans[t], t, h, r.scale, score_rel, 2 * kU, 2, ref_lse[row]);
        for (int d = 0; d < c.D; ++d) {
          const double err = std::abs(double(a[row * c.D + d]) - b[row * c.D + d]);
          ASSERT_LE(err, bd.out[d]) << describe(c) << " at t " << t << " h " << h << " d " << d;
          worst = std::max(worst, err / bd.out[d]);
        }
        ASSERT_LE(std::abs(double(la[row]) - lb[row]), bd.lse) << describe(c) << " lse at t " << t << " h " << h;
      }
    RecordProperty(describe(c) + " worst error / bound", std::to_string(worst));
  }
}

TEST(AttentionBf16, SameBitsWhateverTheThreadCount) {
  for (const Case& c : {Case{77, 77, 4, 4, 64, Mask::kCausal}, Case{257, 257, 6, 2, 72, Mask::kTwoRange}}) {
    const Inputs r = make_run(c, 9);
    const size_t rows = size_t(c.Tq) * c.Hq;
    std::vector<std::vector<float>> outs, lses;
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2, 3}) {
      omp_set_num_threads(threads);
      outs.emplace_back(rows * c.D), lses.emplace_back(rows);
      attention_forward_bf16(outs.back().data(), lses.back().data(), r.q.data(), r.k.data(), r.v.data(),
                             r.spans.data(), c.Tq, c.Tk, c.Hq, c.Hkv, c.D, r.scale);
    }
    omp_set_num_threads(saved);
    EXPECT_EQ(outs[0], outs[1]) << describe(c);
    EXPECT_EQ(outs[0], outs[2]) << describe(c);
    EXPECT_EQ(lses[0], lses[1]) << describe(c);
  }
}

// Keys outside every span (an unfilled cache tail, a skipped prefix) are never used, even where a key pair of the
// packed V straddles a span's edge (odd begin, odd end): NaN there must not reach the output.
TEST(AttentionBf16, IgnoresKeysOutsideEverySpan) {
  const int Tq = 40, Tk = 100, first = 3, filled = 61, H = 2, D = 24;
  Rng rng(5);
  auto q = randn(size_t(Tq) * H * D, rng), k = randn(size_t(Tk) * H * D, rng), v = randn(size_t(Tk) * H * D, rng);
  auto kn = k, vn = v;
  for (size_t i = 0; i < k.size(); ++i)
    if (i < size_t(first) * H * D || i >= size_t(filled) * H * D) kn[i] = vn[i] = NAN;
  std::vector<KeySpan> spans(Tq, KeySpan{first, filled, 0, 0});
  std::vector<float> a(size_t(Tq) * H * D), b(a.size());
  attention_forward_bf16(a.data(), nullptr, q.data(), kn.data(), vn.data(), spans.data(), Tq, Tk, H, H, D, 0.2f);
  attention_forward_bf16(b.data(), nullptr, q.data(), k.data(), v.data(), spans.data(), Tq, Tk, H, H, D, 0.2f);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << "element " << i;
}

// Decode (Tq <= 4) is the f32 kernel, bit for bit.
TEST(AttentionBf16, DecodeIsTheF32Kernel) {
  for (const Case& c : {Case{1, 300, 6, 2, 64, Mask::kCacheOffset}, Case{4, 70, 8, 1, 40, Mask::kTwoRange}}) {
    const Inputs r = make_run(c, 3);
    std::vector<float> a(size_t(c.Tq) * c.Hq * c.D), b(a.size()), la(size_t(c.Tq) * c.Hq), lb(la.size());
    attention_forward_bf16(a.data(), la.data(), r.q.data(), r.k.data(), r.v.data(), r.spans.data(), c.Tq, c.Tk, c.Hq,
                           c.Hkv, c.D, r.scale);
    attention_forward(b.data(), lb.data(), r.q.data(), r.k.data(), r.v.data(), r.spans.data(), c.Tq, c.Tk, c.Hq,
                      c.Hkv, c.D, r.scale);
    EXPECT_EQ(a, b) << describe(c);
    EXPECT_EQ(la, lb) << describe(c);
  }
}

TEST(AttentionBf16, RejectsBadSpans) {
  std::vector<float> q(8 * 8), k(8 * 8), v(8 * 8), out(8 * 8);
  auto run = [&](KeySpan s) {
    std::vector<KeySpan> spans(8, KeySpan{0, 8, 0, 0});
    spans[5] = s;
    attention_forward_bf16(out.data(), nullptr, q.data(), k.data(), v.data(), spans.data(), 8, 8, 1, 1, 8, 1.0f);
  };
  EXPECT_THROW(run({0, 9, 0, 0}), Error);  // past Tk
  EXPECT_THROW(run({0, 0, 0, 0}), Error);  // no key
  EXPECT_THROW(run({0, 3, 2, 4}), Error);  // overlapping
  EXPECT_NO_THROW(run({0, 1, 3, 4}));
  try {
    run({0, 9, 0, 0});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("query 5"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace unmask
