// Linear (oneDNN) against ref::linear_forward. Every output is a dot product of length IC plus a bias, accumulated
// in f32 in some order: |fast - exact| <= (IC + 2)·eps·(Σ|x_i w_i| + |b|). For bf16 both sides use the bf16-rounded
// activations, so the products are exact in f32 and the same bound holds; a fast path that skipped the rounding of
// x would be off by about 2^-9 per term, far outside the bound at these IC.
#include <gtest/gtest.h>

#include <malloc.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/kernels/dnnl_util.h"
#include "unmask/kernels/gemm.h"

namespace unmask {
namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

struct Problem {
  int T, OC, IC;
  DType dtype;
  std::vector<float> x, w32, bias;
  std::vector<uint16_t> w16;
  const void* w() const { return dtype == DType::BF16 ? (const void*)w16.data() : (const void*)w32.data(); }
};

Problem make_problem(int T, int OC, int IC, DType dtype, uint64_t seed) {
  Rng rng(seed);
  Problem p{T, OC, IC, dtype, {}, {}, {}, {}};
  for (int i = 0; i < T * IC; ++i) p.x.push_back(float(rng.normal()));
  for (int i = 0; i < OC * IC; ++i) p.w32.push_back(float(rng.normal()));
  for (int i = 0; i < OC; ++i) p.bias.push_back(float(rng.normal()));
  for (float v : p.w32) p.w16.push_back(f32_to_bf16(v));
  return p;
}

// Σ_i |x_i w_i| + |b| for output (t, o), with x rounded as the fast path rounds it.
double magnitude(const Problem& p, int t, int o, bool with_bias) {
  double s = with_bias ? std::abs(p.bias[o]) : 0.0;
  for (int i = 0; i < p.IC; ++i) {
    float x = p.x[t * p.IC + i];
    double xv = p.dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(x)) : x;
    double wv = p.dtype == DType::BF16 ? bf16_to_f32(p.w16[o * p.IC + i]) : p.w32[o * p.IC + i];
    s += std::abs(xv * wv);
  }
  return s;
}

void expect_close(const Problem& p, const std::vector<float>& out, bool with_bias, const char* what) {
  std::vector<float> ref(size_t(p.T) * p.OC);
  ref::linear_forward(ref.data(), p.x.data(), p.w(), p.dtype, with_bias ? p.bias.data() : nullptr, p.T, p.OC, p.IC);
  for (int t = 0; t < p.T; ++t)
    for (int o = 0; o < p.OC; ++o) {
      double bound = (p.IC + 2) * kEps * magnitude(p, t, o, with_bias);
      ASSERT_LE(std::abs(double(out[t * p.OC + o]) - ref[t * p.OC + o]), bound)
          << what << " " << dtype_name(p.dtype) << " T " << p.T << " OC " << p.OC << " IC " << p.IC << " at (" << t
          << ", " << o << ")" << (with_bias ? " with bias" : "");
    }
}

TEST(Linear, MatchesRefOnAwkwardShapes) {
  const int shapes[][3] = {{1, 1, 1}, {1, 7, 33}, {7, 33, 100}, {33, 100, 7}, {100, 65, 130}, {17, 384, 384},
                           {256, 40, 1000}};
  uint64_t seed = 1;
  for (DType dt : {DType::F32, DType::BF16})
    for (const auto& s : shapes)
      for (bool with_bias : {false, true}) {
        Problem p = make_problem(s[0], s[1], s[2], dt, seed++);
        Linear lin(p.w(), dt, p.OC, p.IC);
        std::vector<float> out(size_t(p.T) * p.OC, NAN);
        lin.forward(out.data(), p.x.data(), p.T, with_bias ? p.bias.data() : nullptr);
        expect_close(p, out, with_bias, "forward");
        if (HasFatalFailure()) return;
      }
}

// One Linear serves many T (its primitives cached per T, its packed weight shared): every call stays right, in any
// order, with and without bias, and after a move.
TEST(Linear, ServesManyRowCountsFromOneWeight) {
  for (DType dt : {DType::F32, DType::BF16}) {
    Problem big = make_problem(64, 48, 72, dt, 42);
    Linear lin(big.w(), dt, big.OC, big.IC);
    for (int T : {5, 64, 1, 5, 33, 64}) {
      Problem p = big;
      p.T = T;
      p.x.resize(size_t(T) * p.IC);
      std::vector<float> out(size_t(T) * p.OC, NAN);
      lin.forward(out.data(), p.x.data(), T, T % 2 ? p.bias.data() : nullptr);
      expect_close(p, out, T % 2, "reused");
    }
    Linear moved = std::move(lin);
    std::vector<float> out(size_t(big.T) * big.OC, NAN);
    moved.forward(out.data(), big.x.data(), big.T, big.bias.data());
    expect_close(big, out, true, "moved");
    EXPECT_EQ(moved.out_features(), 48);
    EXPECT_EQ(moved.in_features(), 72);
  }
}

size_t heap_in_use() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// Under AddressSanitizer the heap is its allocator's, which glibc's mallinfo2 does not see.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kGlibcHeap = false;
#else
constexpr bool kGlibcHeap = true;
#endif

// release() drops the primitives and packed copies of all but the most used row counts and the scratch sized by the
// largest call; afterwards every row count computes the same bits as before (the dropped ones rebuilt), and the
// padded output of a 1000-row call (1024 rows planned) is no longer held.
TEST(Linear, ReleaseGivesMemoryBackAndKeepsResults) {
  const int Ts[] = {1, 1, 1, 5, 17, 40, 1000};
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    Problem p = make_problem(1000, 1024, 32, dt == DType::F16 ? DType::F32 : dt, 7);
    std::vector<uint16_t> w_f16;
    for (float v : p.w32) w_f16.push_back(f32_to_f16(v));
    Linear lin(dt == DType::F16 ? (const void*)w_f16.data() : p.w(), dt, p.OC, p.IC);
    auto run_all = [&] {
      std::vector<std::vector<float>> outs;
      for (int T : Ts) {
        outs.emplace_back(size_t(T) * p.OC, NAN);
        lin.forward(outs.back().data(), p.x.data(), T, p.bias.data());
      }
      return outs;
    };
    const auto before = run_all();
    const size_t held = heap_in_use();
    lin.release(1);
    release_kernel_cache();
    if (kGlibcHeap && dt != DType::F16)  // (f16 takes the panel path, whose per-thread panels are small)
      EXPECT_GE(held - std::min(held, heap_in_use()), size_t(1024) * p.OC * sizeof(float)) << dtype_name(dt);
    const auto after = run_all();
    for (size_t i = 0; i < before.size(); ++i)
      EXPECT_EQ(std::memcmp(before[i].data(), after[i].data(), before[i].size() * sizeof(float)), 0)
          << dtype_name(dt) << " T " << Ts[i];
    lin.release(0);  // everything, twice in a row
    lin.release(0);
    EXPECT_EQ(std::memcmp(before[0].data(), run_all()[0].data(), before[0].size() * sizeof(float)), 0);
  }
}

TEST(Linear, Bf16RoundsActivationsToNearestEven) {
  // x = 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: to nearest even gives 1. w = 1: out must be exactly 1.
  const uint16_t w = f32_to_bf16(1.0f);
  const float x = 1.0f + 0x1p-8f, x_up = 1.0f + 3 * 0x1p-8f;  // x_up ties upward to 1 + 2^-6
  Linear lin(&w, DType::BF16, 1, 1);
  float out = 0;
  lin.forward(&out, &x, 1);
  EXPECT_EQ(out, 1.0f);
  lin.forward(&out, &x_up, 1);
  EXPECT_EQ(out, 1.0f + 0x1p-6f);
}

TEST(Linear, RejectsPartialBlocksAndEmptyWeights) {
  std::vector<uint16_t> w(16);
  EXPECT_NO_THROW(Linear(w.data(), DType::F16, 4, 4));    // read in place (gemm_parts_test.cpp)
  EXPECT_THROW(Linear(w.data(), DType::Q8_0, 4, 4), Error);  // rows of 4 are not whole blocks of 32
  EXPECT_THROW(Linear(nullptr, DType::F32, 4, 4), Error);
  Linear empty;
  float x = 0, out = 0;
  EXPECT_THROW(empty.forward(&out, &x, 1), Error);
}

// The weights' pack (pack_blocked) gives the bytes oneDNN's own reorder gives, padding included, in every layout a
// matmul picks for the shapes (row counts, ragged sizes) and types of the models.
TEST(Linear, PacksWeightsAsOneDnnReordersThem) {
  using dnnl::memory;
  auto& rt = dnnl_runtime();
  Rng rng(11);
  int layouts = 0;
  for (auto wdt : {memory::data_type::f32, memory::data_type::bf16})
    for (auto [N, K] : {std::pair{64, 16}, {100, 36}, {768, 768}, {2304, 768}, {33, 1000}, {5, 7}})
      for (int T : {1, 5, 64, 300}) {
        const int bytes = wdt == memory::data_type::f32 ? 4 : 2;
        std::vector<uint8_t> w(size_t(N) * K * bytes);
        for (auto& b : w) b = uint8_t(rng.below(256));
        memory::desc user({K, N}, wdt, memory::dims{1, K});
        memory::desc src({T, K}, wdt, memory::format_tag::ab), dst({T, N}, memory::data_type::f32,
                                                                   memory::format_tag::ab);
        dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, memory::desc({K, N}, wdt, memory::format_tag::any),
                                                           dst), rt.eng);
        const memory::desc& want = pd.weights_desc();
        memory user_mem(user, rt.eng, w.data()), theirs(want, rt.eng);
        dnnl::reorder(user_mem, theirs).execute(rt.strm, user_mem, theirs);
        rt.strm.wait();
        std::vector<uint8_t> ours(want.get_size(), 0xAB);  // padding must come out zero
        ASSERT_TRUE(pack_blocked(w.data(), N, K, bytes, want, ours.data())) << N << "x" << K << " T " << T;
        ASSERT_EQ(std::memcmp(ours.data(), theirs.get_data_handle(), ours.size()), 0)
            << (bytes == 4 ? "f32 " : "bf16 ") << N << "x" << K << " T " << T;
        ++layouts;
      }
  EXPECT_EQ(layouts, 48);
  // A layout that is not blocked is left to oneDNN.
  std::vector<float> w(12), out(12);
  EXPECT_FALSE(pack_blocked(w.data(), 3, 4, 4, memory::desc({4, 3}, memory::data_type::f32,
                                                             memory::format_tag::any), out.data()));
}

}  // namespace
}  // namespace unmask
