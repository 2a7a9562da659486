// Linear on weights read in place (f16 and quantized parts of mixed types) against ref::linear_forward on the
// exactly dequantized weights, on both kernel paths (portable C++ and AVX-512), and batch invariance: a row's
// output does not depend on how many rows share the pass, where it sits among them, or the thread count.
//
// f32/f16/bf16 parts: the weights are converted exactly to f32 and every output is dot_f32's arithmetic, 16 lane
// sums of IC/16 FMAs each (one rounding per FMA) reduced by 4 additions, then the bias added:
//   |fast - exact| <= (IC/16 + 6)·eps·(Σ|ŵ_i x_i| + |b|).
// Quantized parts (every T): x is quantized to int8 (x̂ = dx·q) and the integer block sums are exact, so against the
// twin on x̂ only the f32 steps of the nb = IC/block blocks round: quant_gemm's definition (quant_gemm.h)
//   |fast - exact(x̂)| <= (2·nb + 3)·eps·(Σ_i terms_i |x̂_i| + |b|),
// where terms_i is |ŵ_i| except for the types with mins, whose two terms d·sc·q and dmin·m are summed separately
// (|d·sc·q| + |dmin·m|).
// Against the twin on x itself, the activations' rounding adds Σ_i |ŵ_i| · dx_i/2 · (1 + 1e-6) (|x - x̂| <= dx/2).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/cpu.h"
#include "unmask/kernels/gemm.h"
#include "unmask/kernels/quant.h"
#include "unmask/kernels/quant_gemm.h"
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

// Σ_i terms_i |x_i| of row r (see the header comment): for a quantized row, block by block from unpack_block, the
// two terms d·sc·(q - off) = ŵ + dmin·m and dmin·m apart (m = 0 for the types without mins).
double magnitude(const Part& p, int r, int IC, const float* x) {
  const uint8_t* row = p.data.data() + size_t(r) * row_bytes(p.dtype, IC);
  std::vector<float> w(static_cast<size_t>(IC));
  if (is_quant_dtype(p.dtype)) ref::dequantize_row(p.dtype, row, w.data(), IC);
  else to_f32(p.dtype, row, w.data(), IC);
  const bool quant = is_quant_dtype(p.dtype);
  const int bs = quant ? dtype_info(p.dtype).block_size : IC;
  double s = 0;
  IntBlock blk;
  for (int b0 = 0; b0 < IC; b0 += bs) {
    if (quant) unpack_block(p.dtype, row + size_t(b0 / bs) * size_t(dtype_info(p.dtype).block_bytes), blk);
    for (int i = b0; i < b0 + bs; ++i) {
      const double dm = quant ? double(blk.dmin) * blk.m[(i - b0) / blk.sub] : 0.0;
      s += (std::fabs(w[size_t(i)] + dm) + std::fabs(dm)) * std::fabs(x[i]);
    }
  }
  return s;
}

// Byte offset of the first block's f16 scale d (the negative controls corrupt it).
size_t scale_offset(DType t) {
  switch (t) {
    case DType::Q2_K: return offsetof(BlockQ2_K, d);
    case DType::Q3_K: return offsetof(BlockQ3_K, d);
    case DType::Q6_K: return offsetof(BlockQ6_K, d);
    default: return 0;
  }
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

// Σ_i |ŵ_i| dx_i / 2 of row r: what quantizing x to int8 may move the product by.
double act_rounding(const Part& p, int r, int IC, const QuantizedActs& a, int t) {
  const uint8_t* row = p.data.data() + size_t(r) * row_bytes(p.dtype, IC);
  std::vector<float> w(static_cast<size_t>(IC));
  ref::dequantize_row(p.dtype, row, w.data(), IC);
  double s = 0;
  for (int i = 0; i < IC; ++i) s += std::fabs(w[size_t(i)]) * 0.5 * a.d[size_t(t) * size_t(IC / 32) + size_t(i / 32)];
  return s * (1 + 1e-6);
}

// Checks every output of lin.forward(x) against the twin: on x̂ (the int8 activations' values) for quantized parts
// with the bound of the f32 steps, or, with `on_x`, on x itself with the activations' rounding added. `corrupt`
// (negative control) makes the twin read a weight whose first block scale is off, and then some output must break
// the bound.
void check_against_twin(const Case& c, const std::vector<float>& x, int T, const std::vector<float>& bias,
                        bool corrupt = false, bool on_x = false) {
  Linear lin(c.views(), c.IC);
  const int OC = c.OC(), IC = c.IC;
  std::vector<float> out(size_t(T) * size_t(OC));
  lin.forward(out.data(), x.data(), T, bias.empty() ? nullptr : bias.data());
  bool broken = false;
  int first = 0;
  for (const Part& p : c.parts) {
    const bool quant = is_quant_dtype(p.dtype);
    std::vector<float> xin = x, xhat = x;
    QuantizedActs a;
    if (quant) {
      quantize_acts(p.dtype, x.data(), T, IC, a);
      for (int t = 0; t < T; ++t)
        for (int i = 0; i < IC; ++i) xhat[size_t(t) * size_t(IC) + size_t(i)] = a.value(t, i);
      if (!on_x) xin = xhat;
    }
    std::vector<uint8_t> w = p.data;
    const size_t d_at = scale_offset(p.dtype);
    if (corrupt && !on_x) w[d_at] ^= 0x08;  // a mantissa bit of the first block's f16 scale
    if (corrupt && on_x) {  // against the activations' rounding: every block's scale about 1.25x-1.5x
      const size_t bb = size_t(dtype_info(p.dtype).block_bytes);
      for (size_t at = d_at; at < w.size(); at += bb) {
        uint16_t d;
        std::memcpy(&d, w.data() + at, 2);
        d = uint16_t(d + 0x0200);
        std::memcpy(w.data() + at, &d, 2);
      }
    }
    DType wtype = p.dtype;
    if (wtype == DType::BF16) {  // read exactly as f32, x not rounded (ref rounds x for its bf16 oneDNN twin)
      std::vector<uint8_t> w32(size_t(p.rows) * size_t(IC) * 4);
      to_f32(wtype, w.data(), reinterpret_cast<float*>(w32.data()), int64_t(p.rows) * IC);
      w = std::move(w32), wtype = DType::F32;
    }
    std::vector<float> want(size_t(T) * size_t(p.rows));
    ref::linear_forward(want.data(), xin.data(), w.data(), wtype, bias.empty() ? nullptr : bias.data() + first, T,
                        p.rows, IC);
    const double k = !quant ? IC / 16 + 6 : 2.0 * IC / dtype_info(p.dtype).block_size + 3;
    for (int t = 0; t < T; ++t)
      for (int o = 0; o < p.rows; ++o) {
        const double b = bias.empty() ? 0.0 : std::fabs(bias[size_t(first + o)]);
        double bound = k * kEps * (magnitude(p, o, IC, xhat.data() + size_t(t) * size_t(IC)) + b);
        if (quant && on_x) bound += act_rounding(p, o, IC, a, t);
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
                         {DType::Q4_0, 6}, {DType::BF16, 3}, {DType::F32, 2}, {DType::Q4_1, 9},
                         {DType::Q5_0, 17}, {DType::Q5_1, 4}, {DType::Q2_K, 19}, {DType::Q3_K, 13}, {DType::Q5_K, 23}})
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
    for (int T : {1, 3, 5, 33}) {
      check_against_twin(c, normal(T * c.IC, uint64_t(T)), T, {});
      check_against_twin(c, normal(T * c.IC, uint64_t(T)), T, normal(c.OC(), 9));
      check_against_twin(c, normal(T * c.IC, uint64_t(T)), T, normal(c.OC(), 9), false, /*on_x=*/true);
    }
  }
}

// Long rows (many blocks, many 16-value lane steps).
TEST(LinearParts, LongRows) {
  Rng rng(8);
  const int IC = 2 * 1024 + 256;
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
    for (int i : {0, 1, 3, 4, 7, 8, 9, 10, 11, 12}) {  // the quantized parts of mixed_case
      Case one{{c.parts[size_t(i)]}, 512};
      check_against_twin(one, x, T, {}, /*corrupt=*/true);
      check_against_twin(one, x, T, {}, /*corrupt=*/true, /*on_x=*/true);
    }
  }
}

// Row `at` of a pass over T rows equals the same x row run alone, bit for bit, on every path and thread count
// (quantized parts: quant_dot's one-row result, the definition, at every T: the repacked types' tiles, the other K
// types read straight from the blocks up to kQuantRowsDirect rows and through panels above).
TEST(LinearParts, RowsDoNotDependOnTheBatch) {
  const Case c = mixed_case(768, 10);
  const int OC = c.OC(), IC = c.IC;
  Linear lin(c.views(), IC);
  const auto row = normal(IC, 11);
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    std::vector<float> one_row(static_cast<size_t>(OC));  // quant_dot for quantized parts
    int first = 0;
    for (const Part& p : c.parts) {
      if (is_quant_dtype(p.dtype)) {
        QuantizedActs a;
        quantize_acts(p.dtype, row.data(), 1, IC, a);
        for (int o = 0; o < p.rows; ++o)
          one_row[size_t(first + o)] = quant_dot(p.dtype, p.data.data() + size_t(o) * row_bytes(p.dtype, IC), a, 0);
      }
      first += p.rows;
    }
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      std::vector<float> alone(static_cast<size_t>(OC));
      lin.forward(alone.data(), row.data(), 1);
      for (int T : {1, 2, 3, 5, 8, 17, 64, 300})
        for (int at : {0, T / 2, T - 1}) {
          auto x = normal(T * IC, uint64_t(T * 7 + at));
          std::copy(row.begin(), row.end(), x.begin() + int64_t(at) * IC);
          std::vector<float> out(size_t(T) * size_t(OC));
          lin.forward(out.data(), x.data(), T);
          first = 0;
          for (const Part& p : c.parts) {
            const float* want = (is_quant_dtype(p.dtype) ? one_row : alone).data() + first;
            EXPECT_EQ(0, std::memcmp(want, out.data() + size_t(at) * size_t(OC) + size_t(first), size_t(p.rows) * 4))
                << dtype_name(p.dtype) << " T " << T << " at " << at << " threads " << threads;
            first += p.rows;
          }
        }
    }
    omp_set_num_threads(saved);
  }
}

// The AVX-512 kernels and the portable C++ path give the same bits (the same operations, output by output): quant_gemm
// and the f32/f16/bf16 lane dots.
TEST(LinearParts, FastPathGivesThePortableBits) {
  if (!detect_cpu_features().avx512_int8()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU: only the portable path runs";
  const Case c = mixed_case(768, 12);
  Linear lin(c.views(), c.IC);
  for (int T : {1, 3, 7, 37}) {
    const auto x = normal(T * c.IC, uint64_t(T));
    std::vector<float> fast(size_t(T) * size_t(c.OC())), portable(fast.size());
    lin.forward(fast.data(), x.data(), T);
    {
      ScopedCpuFeatures generic{CpuFeatures{}};
      lin.forward(portable.data(), x.data(), T);
    }
    int first = 0;
    for (const Part& p : c.parts) {
      for (int t = 0; t < T; ++t)
        EXPECT_EQ(0, std::memcmp(fast.data() + size_t(t) * size_t(c.OC()) + size_t(first),
                                 portable.data() + size_t(t) * size_t(c.OC()) + size_t(first), size_t(p.rows) * 4))
            << dtype_name(p.dtype) << " T " << T << " t " << t;
      first += p.rows;
    }
  }
}

// quant_dot is quant_gemm's one-row case: the same bits as the Linear's output.
TEST(LinearParts, QuantDotIsTheOneRowCase) {
  Rng rng(13);
  for (const auto& [path, features] : paths()) {
    ScopedCpuFeatures scoped(features);
    SCOPED_TRACE(path);
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                    DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
      const int IC = 768, T = kQuantRowsDirect + 3;
      const Part p = make_part(t, 19, IC, rng);
      Linear lin(p.data.data(), t, p.rows, IC);
      const auto x = normal(T * IC, 14);
      std::vector<float> out(size_t(T) * size_t(p.rows));
      lin.forward(out.data(), x.data(), T);
      QuantizedActs a;
      quantize_acts(t, x.data(), T, IC, a);
      for (int tt = 0; tt < T; ++tt)
        for (int o = 0; o < p.rows; ++o) {
          const float one = quant_dot(t, p.data.data() + size_t(o) * row_bytes(t, IC), a, tt);
          EXPECT_EQ(0, std::memcmp(&one, &out[size_t(tt) * size_t(p.rows) + size_t(o)], 4))
              << dtype_name(t) << " t " << tt << " o " << o;
        }
    }
  }
}

// Weights read from their blocks (repack off: a model too large to copy) give the repacked tiles' bits.
TEST(LinearParts, RepackedAndInPlaceGiveTheSameBits) {
  const Case c = mixed_case(768, 15);
  Linear packed(c.views(), c.IC), in_place(c.views(), c.IC, false);
  for (int T : {1, 3, 9}) {
    const auto x = normal(T * c.IC, uint64_t(T + 40));
    std::vector<float> y1(size_t(T) * size_t(c.OC())), y2(y1.size());
    packed.forward(y1.data(), x.data(), T);
    in_place.forward(y2.data(), x.data(), T);
    EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * 4)) << "T " << T;
  }
  EXPECT_TRUE(quant_repacks(DType::Q4_K) && quant_repacks(DType::Q8_0) && !quant_repacks(DType::Q2_K));
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
