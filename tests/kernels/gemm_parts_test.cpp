// Linear on weights read in place (f16 and quantized parts of mixed types) against ref::linear_forward on the
// exactly dequantized weights, on both kernel paths (portable C++ and AVX-512).
//
// Panel path (f16 parts, and quantized parts beyond kQuantRowsMatvec rows): the weights are dequantized exactly to
// f32 and each output is, per chunk of kQuantPanelK columns, a sequential sum of products (one rounding per FMA,
// two per multiply-add on the portable path), the chunk sums added in order (one rounding each), then the bias:
//   |fast - exact| <= (2·IC + IC/kQuantPanelK + 2)·eps·(Σ|ŵ_i x_i| + |b|).
// Row-dot path (quantized parts, T <= kQuantRowsMatvec): x is quantized to int8 (x̂ = d·q) and the integer block
// sums are exact, so against the twin on x̂ only the f32 combination of at most IC/32 block terms rounds (the scale
// products, the running sums, the final reduction):
//   |fast - exact(x̂)| <= (IC/32 + 8)·eps·(Σ_i |terms_i| |x̂_i| + |b|),
// where terms_i is |ŵ_i| except for Q4_K, whose two terms d·sc·q and dmin·m are summed separately (|d·sc·q| + |dmin·m|).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/cpu.h"
#include "unmask/kernels/gemm.h"
#include "unmask/kernels/quant.h"
#include "../common/test_util.h"

namespace unmask {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

std::vector<std::pair<const char*, CpuFeatures>> paths() {
  std::vector<std::pair<const char*, CpuFeatures>> p{{"generic", CpuFeatures{}}};
  if (detect_cpu_features().avx512_int8()) p.emplace_back("avx512", detect_cpu_features());
  return p;
}

// One part: rows (rows, IC) of normal values stored in dtype.
struct Part {
  DType dtype;
  int rows;
  std::vector<uint8_t> data;
};

Part make_part(DType t, int rows, int IC, Rng& rng) {
  Part p{t, rows, std::vector<uint8_t>(row_bytes(t, IC) * size_t(rows))};
  std::vector<float> row(static_cast<size_t>(IC));
  for (int r = 0; r < rows; ++r) {
    for (auto& v : row) v = float(rng.normal());
    uint8_t* dst = p.data.data() + size_t(r) * row_bytes(t, IC);
    if (is_quant_dtype(t)) quantize_row(t, row.data(), dst, IC);
    else from_f32(t, row.data(), dst, IC);
  }
  return p;
}

// Σ_i terms_i |x_i| of row r (see the header comment).
double magnitude(const Part& p, int r, int IC, const float* x) {
  const uint8_t* row = p.data.data() + size_t(r) * row_bytes(p.dtype, IC);
  std::vector<float> w(static_cast<size_t>(IC));
  if (is_quant_dtype(p.dtype)) ref::dequantize_row(p.dtype, row, w.data(), IC);
  else to_f32(p.dtype, row, w.data(), IC);
  double s = 0;
  for (int i = 0; i < IC; ++i) {
    double term = std::fabs(w[size_t(i)]);
    if (p.dtype == DType::Q4_K) {
      const auto& blk = reinterpret_cast<const BlockQ4_K*>(row)[i / 256];
      int sc, m;
      scale_min_k4((i % 256) / 32, blk.scales, sc, m);
      const double dm = double(f16_to_f32(blk.dmin)) * m;
      term = std::fabs(w[size_t(i)] + dm) + dm;
    }
    s += term * std::fabs(x[i]);
  }
  return s;
}

struct Case {
  std::vector<Part> parts;
  int IC;
  std::vector<LinearPart> views() const {
    std::vector<LinearPart> v;
    for (const Part& p : parts) v.push_back({p.data.data(), p.dtype, p.rows});
    return v;
  }
  int OC() const {
    int n = 0;
    for (const Part& p : parts) n += p.rows;
    return n;
  }
};

// Checks every output of lin.forward(x) against the twin; `corrupt` (negative control) makes the twin read a
// weight whose first block scale is off, and then some output must break the bound.
void check_against_twin(const Case& c, const std::vector<float>& x, int T, const std::vector<float>& bias,
                        bool corrupt = false) {
  Linear lin(c.views(), c.IC);
  const int OC = c.OC(), IC = c.IC;
  std::vector<float> out(size_t(T) * size_t(OC));
  lin.forward(out.data(), x.data(), T, bias.empty() ? nullptr : bias.data());
  bool broken = false;
  int first = 0;
  for (const Part& p : c.parts) {
    const bool row_dots = is_quant_dtype(p.dtype) && T <= kQuantRowsMatvec;
    std::vector<float> xin = x;
    if (row_dots) {
      QuantizedActs a;
      quantize_acts(p.dtype, x.data(), T, IC, a);
      for (int t = 0; t < T; ++t)
        for (int i = 0; i < IC; ++i) xin[size_t(t) * size_t(IC) + size_t(i)] = a.value(t, i);
    }
    std::vector<uint8_t> w = p.data;
    if (corrupt) w[p.dtype == DType::Q6_K ? 208 : 0] ^= 0x08;  // a mantissa bit of the first block's f16 scale
    DType wtype = p.dtype;
    if (wtype == DType::BF16) {  // read exactly as f32, x not rounded (ref rounds x for its bf16 oneDNN twin)
      std::vector<uint8_t> w32(size_t(p.rows) * size_t(IC) * 4);
      to_f32(wtype, w.data(), reinterpret_cast<float*>(w32.data()), int64_t(p.rows) * IC);
      w = std::move(w32), wtype = DType::F32;
    }
    std::vector<float> want(size_t(T) * size_t(p.rows));
    ref::linear_forward(want.data(), xin.data(), w.data(), wtype, bias.empty() ? nullptr : bias.data() + first, T,
                        p.rows, IC);
    const double k = row_dots ? IC / 32 + 8 : 2 * IC + IC / kQuantPanelK + 2;
    for (int t = 0; t < T; ++t)
      for (int o = 0; o < p.rows; ++o) {
        const double b = bias.empty() ? 0.0 : std::fabs(bias[size_t(first + o)]);
        const double bound = k * kEps * (magnitude(p, o, IC, xin.data() + size_t(t) * size_t(IC)) + b);
        const double err = std::fabs(double(out[size_t(t) * size_t(OC) + size_t(first + o)]) - want[size_t(t) * size_t(p.rows) + size_t(o)]);
        if (corrupt) broken |= err > bound;
        else ASSERT_LE(err, bound) << dtype_name(p.dtype) << " T " << T << " t " << t << " o " << o;
      }
    first += p.rows;
  }
  if (corrupt) {
    EXPECT_TRUE(broken) << "a wrong block scale went unnoticed, T " << T;
  }
}

Case mixed_case(int IC, uint64_t seed) {
  Rng rng(seed);
  Case c{{}, IC};
  for (auto [t, rows] : {std::pair{DType::Q4_K, 37}, {DType::Q6_K, 21}, {DType::F16, 5}, {DType::Q8_0, 11},
                         {DType::Q4_0, 6}, {DType::BF16, 3}, {DType::F32, 2}})
    c.parts.push_back(make_part(t, rows, IC, rng));
  return c;
}

std::vector<float> normal(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& f : v) f = float(rng.normal());
  return v;
}

TEST(LinearParts, MixedTypesMatchTheTwinOnBothPaths) {
  const Case c = mixed_case(512, 1);
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    for (int T : {1, 3, kQuantRowsMatvec, kQuantRowsMatvec + 1, 33}) {
      check_against_twin(c, normal(T * c.IC, uint64_t(T)), T, {});
      check_against_twin(c, normal(T * c.IC, uint64_t(T)), T, normal(c.OC(), 9));
    }
  }
}

// Rows longer than a panel chunk: the chunk sums are accumulated.
TEST(LinearParts, LongRowsSpanSeveralPanelChunks) {
  Rng rng(8);
  const int IC = 2 * kQuantPanelK + 256;
  Case c{{}, IC};
  for (auto [t, rows] : {std::pair{DType::Q4_K, 70}, {DType::F16, 3}, {DType::Q8_0, 5}})
    c.parts.push_back(make_part(t, rows, IC, rng));
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    for (int T : {2, 6}) check_against_twin(c, normal(T * IC, uint64_t(T)), T, normal(c.OC(), 3));
  }
}

TEST(LinearParts, WrongScaleBreaksTheBound) {
  const Case c = mixed_case(512, 2);
  for (int T : {1, 9}) {
    std::vector<float> x(size_t(T) * 512);
    Rng rng(3);
    for (auto& f : x) f = 0.5f + rng.uniform_f();  // one sign: the error of a wrong scale cannot cancel
    Case one{{c.parts[0]}, 512};
    check_against_twin(one, x, T, {}, /*corrupt=*/true);
    Case q6{{c.parts[1]}, 512};
    check_against_twin(q6, x, T, {}, /*corrupt=*/true);
  }
}

TEST(LinearParts, ResultsDoNotDependOnTheThreadCount) {
  const Case c = mixed_case(768, 4);
  Linear lin(c.views(), c.IC);
  for (int T : {2, 40}) {
    const auto x = normal(T * c.IC, 5);
    std::vector<float> y1(size_t(T) * size_t(c.OC())), y2(y1.size());
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    lin.forward(y1.data(), x.data(), T);
    omp_set_num_threads(2);
    lin.forward(y2.data(), x.data(), T);
    omp_set_num_threads(saved);
    EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << "T " << T;
  }
}

TEST(LinearParts, SingleWeightConstructorTakesF16AndQuantized) {
  Rng rng(6);
  const Part p = make_part(DType::Q4_0, 7, 96, rng);
  Linear lin(p.data.data(), DType::Q4_0, 7, 96);
  EXPECT_EQ(lin.out_features(), 7);
  EXPECT_EQ(lin.parts().size(), 1u);
  check_against_twin(Case{{p}, 96}, normal(2 * 96, 7), 2, {});
}

TEST(LinearParts, RowsThatAreNotWholeBlocksAreRefused) {
  std::vector<uint8_t> buf(4096);
  const std::string msg = test::error_of([&] { Linear({{buf.data(), DType::F16, 3}, {buf.data(), DType::Q4_K, 2}}, 96); });
  EXPECT_NE(msg.find("part 1 of type q4_k"), std::string::npos) << msg;
}

}  // namespace
}  // namespace unmask
