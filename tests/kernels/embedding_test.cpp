// embedding_forward against ref: the conversions from f32, f16 and bf16 to f32 are exact, so the rows must match bit
// for bit (ref decodes f16 from its fields in double, independently of dtype.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/embedding.h"

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

TEST(Embedding, RejectsQuantizedTables) {
  std::vector<uint8_t> table(34 * 4);
  std::vector<float> out(32);
  int32_t tok = 0;
  EXPECT_THROW(embedding_forward(out.data(), &tok, 1, table.data(), DType::Q8_0, 4, 32), Error);
}

}  // namespace
}  // namespace unmask
