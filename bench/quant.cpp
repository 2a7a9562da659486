// matvec on quantized weights against a plain read of the same bytes, 2 threads, same run; then Linear over 256
// rows (a diffusion step's GEMMs) and over 1 row (a decode step) for every weight type, in GOP/s against f32 on
// oneDNN measured in the same run.
//   ./build/q/bench/bench_quant [--t256]   (--t256: only the Linear over 256 rows)
#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <vector>

#include <immintrin.h>

#include "unmask/base/rng.h"
#include "unmask/kernels/gemm.h"
#include "unmask/kernels/quant.h"

using namespace unmask;

namespace {

double seconds_best(int reps, auto&& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Sum of the bytes as 64-bit words, split over the threads: the memory-read ceiling.
uint64_t read_all(const uint8_t* p, size_t bytes) {
  uint64_t total = 0;
#pragma omp parallel reduction(+ : total)
  {
    __m512i acc = _mm512_setzero_si512();
#pragma omp for schedule(static)
    for (int64_t i = 0; i < int64_t(bytes / 64); ++i) acc = _mm512_add_epi64(acc, _mm512_loadu_si512(p + 64 * i));
    total += uint64_t(_mm512_reduce_add_epi64(acc));
  }
  return total;
}

// W (OC, IC) of normal values stored as t.
std::vector<uint8_t> make_weight(DType t, int OC, int IC, Rng& rng) {
  std::vector<uint8_t> w(row_bytes(t, IC) * size_t(OC));
  std::vector<float> row(static_cast<size_t>(IC));
  for (int o = 0; o < OC; ++o) {
    for (auto& f : row) f = float(rng.normal() * 0.02);
    uint8_t* dst = w.data() + size_t(o) * row_bytes(t, IC);
    if (is_quant_dtype(t)) quantize_row(t, row.data(), dst, IC);
    else from_f32(t, row.data(), dst, IC);
  }
  return w;
}

// Linear over T rows: f32/bf16 on oneDNN (prepacked), the other types read in place; GOP/s (2 per multiply-add)
// and the ratio to f32 on oneDNN measured just before, best of `reps` (each rep 2+ passes for small T).
void bench_linear(int T, int OC, int IC, Rng& rng) {
  std::vector<float> x(size_t(T) * IC), out(size_t(T) * OC);
  for (auto& f : x) f = float(rng.normal());
  double f32_gops = 0;
  const int inner = T == 1 ? 20 : 1;
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1,
                  DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
    const auto w = make_weight(t, OC, IC, rng);
    Linear lin(w.data(), t, OC, IC);
    lin.forward(out.data(), x.data(), T);  // primitives built, weights packed
    const double sec = seconds_best(T == 1 ? 30 : 7, [&] {
      for (int i = 0; i < inner; ++i) lin.forward(out.data(), x.data(), T);
    }) / inner;
    const double gops = 2.0 * T * OC * IC / sec / 1e9;
    if (t == DType::F32) f32_gops = gops;
    std::printf("linear %-4s T %3d  %5d x %-5d  %8.4f ms  %7.1f GOP/s  %5.2fx f32  %6.1f GB/s of weights\n",
                std::string(dtype_name(t)).c_str(), T, OC, IC, sec * 1e3, gops, gops / f32_gops,
                double(w.size()) / sec / 1e9);
  }
}

// matvec on Q8_0 and Q4_K weights against the memory-read ceiling.
void bench_matvec(Rng& rng) {
  for (DType t : {DType::Q8_0, DType::Q4_K})
    for (auto [OC, IC] : {std::pair{4096, 4096}, std::pair{16384, 4096}}) {
      std::vector<float> row(IC), x(IC), y(OC);
      const size_t rb = row_bytes(t, IC);
      std::vector<uint8_t> w(rb * size_t(OC));
      for (int o = 0; o < OC; ++o) {
        for (auto& f : row) f = 2 * rng.uniform_f() - 1;
        quantize_row(t, row.data(), w.data() + size_t(o) * rb, IC);
      }
      for (auto& f : x) f = 2 * rng.uniform_f() - 1;
      QuantizedActs scratch;
      volatile uint64_t sink = 0;
      const double t_read = seconds_best(20, [&] { sink = sink + read_all(w.data(), w.size()); });
      const double t_mv = seconds_best(20, [&] { matvec(t, w.data(), OC, IC, x.data(), y.data(), scratch); });
      const double gb = double(w.size()) / 1e9;
      std::printf("matvec %-4s %5d x %d  %6.1f MB  %7.3f ms  %6.2f GB/s   read %6.2f GB/s   ratio %.2f\n",
                  std::string(dtype_name(t)).c_str(), OC, IC, gb * 1e3, t_mv * 1e3, gb / t_mv, gb / t_read,
                  t_read / t_mv);
    }
}

}  // namespace

int main(int argc, char** argv) {
  omp_set_num_threads(2);
  Rng rng(1);
  const bool t256_only = argc > 1 && std::string_view(argv[1]) == "--t256";  // the Linear at T = 256 alone
  if (!t256_only) bench_matvec(rng);
  for (int T : {256, 1})
    for (auto [OC, IC] : {std::pair{2048, 768}, std::pair{768, 2048}, std::pair{768, 768}, std::pair{4096, 4096}})
      if (T == 256 || !t256_only) bench_linear(T, OC, IC, rng);
  return 0;
}
