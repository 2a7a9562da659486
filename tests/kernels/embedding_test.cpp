// embedding_forward against ref: the conversions from f32, f16 and bf16 to f32 are exact, and so is dequantizing a
// quantized row, so the rows must match bit for bit (ref decodes f16 from its fields in double, independently of
// dtype.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/cpu.h"
#include "unmask/kernels/embedding.h"
#include "unmask/kernels/quant.h"

namespace unmask {
namespace {

std::vector<uint8_t> make_table(DType dt, int V, int C, Rng& rng) {
  std::vector<float> f(size_t(V) * C);
  for (auto& v : f) v = float(rng.normal() * 100);
  f[0] = 1e-7f;  // subnormal in f16
  std::vector<uint8_t> t(row_bytes(dt, C) * V);
  from_f32(dt, f.data(), t.data(), int64_t(f.size()));
  return t;
}

TEST(Embedding, MatchesRefBitForBit) {
  Rng rng(1);
  const int V = 40;
  for (DType dt : {DType::F32, DType::F16, DType::BF16})
    for (int C : {1, 7, 33, 100}) {
      auto table = make_table(dt, V, C, rng);
      for (int T : {1, 7, 100}) {
        std::vector<int32_t> tok(T);
        for (auto& id : tok) id = int32_t(rng.below(V));
        tok[0] = 0, tok[T - 1] = V - 1;
        std::vector<float> out(size_t(T) * C, NAN), ref(size_t(T) * C);
        embedding_forward(out.data(), tok.data(), T, table.data(), dt, V, C);
        ref::embedding_forward(ref.data(), tok.data(), T, table.data(), dt, V, C);
        ASSERT_EQ(0, std::memcmp(out.data(), ref.data(), out.size() * 4))
            << dtype_name(dt) << " C " << C << " T " << T;
      }
    }
}

TEST(Embedding, OutOfRangeIdNamesPositionIdAndVocabulary) {
  std::vector<float> table(40 * 3), out(4 * 3);
  for (int32_t bad : {40, -1, 1000}) {
    std::vector<int32_t> tok = {0, 5, 39, bad};
    try {
      embedding_forward(out.data(), tok.data(), 4, table.data(), DType::F32, 40, 3);
      FAIL() << "expected Error for id " << bad;
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("position 3"), std::string::npos) << m;
      EXPECT_NE(m.find(std::to_string(bad)), std::string::npos) << m;
      EXPECT_NE(m.find("40"), std::string::npos) << m;
    }
  }
}

// Quantized tables: the token's row of blocks dequantized, the same bits as ref's value-by-value formulas, on the
// portable path and on AVX-512 where the CPU has it.
TEST(Embedding, QuantizedRowsMatchRefBitForBit) {
  Rng rng(2);
  const int V = 9, C = 512, T = 6;
  std::vector<float> f(size_t(V) * C);
  for (auto& v : f) v = float(rng.normal());
  const std::vector<int32_t> tok = {8, 0, 3, 3, 5, 1};
  std::vector<CpuFeatures> paths = {CpuFeatures{}};
  if (detect_cpu_features().avx512_int8()) paths.push_back(detect_cpu_features());
  for (DType dt : {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                   DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    std::vector<uint8_t> table(row_bytes(dt, C) * V);
    for (int v = 0; v < V; ++v) quantize_row(dt, f.data() + size_t(v) * C, table.data() + size_t(v) * row_bytes(dt, C), C);
    std::vector<float> want(size_t(T) * C);
    ref::embedding_forward(want.data(), tok.data(), T, table.data(), dt, V, C);
    for (const CpuFeatures& features : paths) {
      ScopedCpuFeatures scoped(features);
      std::vector<float> out(size_t(T) * C, NAN);
      embedding_forward(out.data(), tok.data(), T, table.data(), dt, V, C);
      EXPECT_EQ(0, std::memcmp(out.data(), want.data(), out.size() * 4)) << dtype_name(dt);
    }
    EXPECT_NEAR(want[0], f[size_t(8) * C], 0.5) << dtype_name(dt);  // row 8 really is token 8's
  }
}

}  // namespace
}  // namespace unmask
