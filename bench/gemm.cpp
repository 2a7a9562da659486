// Kernel throughput: oneDNN GEMM through unmask::Linear (f32 and bf16, prepacked weights) and attention_forward.
//
//   bench_gemm                       the default shapes (below), T = 1, 256, 1024
//   bench_gemm 256,1024,384 1,...    T,OC,IC triples
//   bench_gemm --attention 1024,12,64   attention T,H,D (bidirectional and causal, and decode over T keys; f32
//                                       kernel, then the bf16 one beside it)
//
// Each figure is the median of several timed reps after a warmup; GFLOP/s counts 2·T·OC·IC for a GEMM and
// 4·Tq·Tk·H·D (halved for causal) for attention. Threads: OMP_NUM_THREADS (all cores by default).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "unmask/base/timer.h"
#include "unmask/kernels/attention.h"
#include "unmask/kernels/gemm.h"

using namespace unmask;

namespace {

// Median seconds of f() over at least 5 reps and ~0.3 s, after 2 warmup calls; the fastest rep goes to *best
// (on a machine shared with other work, OpenMP barriers can lose whole scheduler slices: compare the two).
template <typename F>
double median_seconds(F&& f, double* best = nullptr) {
  f(), f();
  std::vector<double> t;
  Timer total;
  while (t.size() < 5 || (total.seconds() < 0.3 && t.size() < 200)) {
    Timer one;
    f();
    t.push_back(one.seconds());
  }
  std::sort(t.begin(), t.end());
  if (best) *best = t[0];
  return t[t.size() / 2];
}

std::vector<float> filled(size_t n, float phase) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::sin(float(i) * 0.013f + phase);
  return v;
}

void bench_linear(int T, int OC, int IC) {
  auto w = filled(size_t(OC) * IC, 0.5f), x = filled(size_t(T) * IC, 1.0f);
  std::vector<uint16_t> wb(w.size());
  from_f32(DType::BF16, w.data(), wb.data(), int64_t(w.size()));
  std::vector<float> out(size_t(T) * OC);
  Linear lf(w.data(), DType::F32, OC, IC), lb(wb.data(), DType::BF16, OC, IC);
  const double flop = 2.0 * T * OC * IC;
  double bf, bb;
  double tf = median_seconds([&] { lf.forward(out.data(), x.data(), T); }, &bf);
  double tb = median_seconds([&] { lb.forward(out.data(), x.data(), T); }, &bb);
  std::printf("%6d %6d %6d   %9.1f %9.1f   %8.3f %8.3f   %5.2f   %9.1f %9.1f\n", T, OC, IC, flop / tf * 1e-9,
              flop / tb * 1e-9, tf * 1e3, tb * 1e3, tf / tb, flop / bf * 1e-9, flop / bb * 1e-9);
}

void bench_attention(int T, int H, int D) {
  auto q = filled(size_t(T) * H * D, 0.1f), k = filled(size_t(T) * H * D, 0.7f), v = filled(size_t(T) * H * D, 1.3f);
  std::vector<float> out(q.size()), lse(size_t(T) * H);
  std::vector<KeySpan> bi(T, KeySpan{0, T, 0, 0}), causal(T);
  for (int i = 0; i < T; ++i) causal[i] = {0, i + 1, 0, 0};
  const float scale = 1.0f / std::sqrt(float(D));
  double best = 0;
  using Kernel = decltype(&attention_forward);
  auto run = [&](const std::vector<KeySpan>& s, int Tq, Kernel kernel = attention_forward) {
    return median_seconds(
        [&] { kernel(out.data(), lse.data(), q.data(), k.data(), v.data(), s.data(), Tq, T, H, H, D, scale); }, &best);
  };
  const double flop = 4.0 * T * T * H * D;
  double tb = run(bi, T), bb = best, tc = run(causal, T), bc = best;
  std::vector<KeySpan> last(1, KeySpan{0, T, 0, 0});
  double td = run(last, 1);
  const double td_best = best;
  double tb16 = run(bi, T, attention_forward_bf16), bb16 = best, tc16 = run(causal, T, attention_forward_bf16),
         bc16 = best;
  std::printf("attention T %d H %d D %d, %d threads (median, best)\n"
              "  bidirectional %.2f ms %.1f GFLOP/s (best %.1f)\n  causal %.2f ms %.1f GFLOP/s (best %.1f)\n"
              "  decode, 1 query over %d keys: %.1f us, %.1f GB/s of K+V (best %.1f us)\n",
              T, H, D, omp_get_max_threads(), tb * 1e3, flop / tb * 1e-9, flop / bb * 1e-9, tc * 1e3,
              flop / 2 / tc * 1e-9, flop / 2 / bc * 1e-9, T, td * 1e6, 2.0 * T * H * D * 4 / td * 1e-9, td_best * 1e6);
  std::printf("  bf16 (attention_forward_bf16): bidirectional %.2f ms %.1f GFLOP/s (best %.1f, %.2fx f32)   "
              "causal %.2f ms %.1f GFLOP/s (best %.1f, %.2fx f32)\n",
              tb16 * 1e3, flop / tb16 * 1e-9, flop / bb16 * 1e-9, tb / tb16, tc16 * 1e3, flop / 2 / tc16 * 1e-9,
              flop / 2 / bc16 * 1e-9, tc / tc16);
}

bool parse_triple(const char* s, int v[3]) { return std::sscanf(s, "%d,%d,%d", &v[0], &v[1], &v[2]) == 3; }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::vector<int>> shapes;
  for (int i = 1; i < argc; ++i) {
    int v[3];
    std::string a = argv[i];
    if (a == "--attention" && i + 1 < argc && parse_triple(argv[i + 1], v)) {
      bench_attention(v[0], v[1], v[2]);
      ++i;
      continue;
    }
    if (!parse_triple(argv[i], v) || v[0] <= 0 || v[1] <= 0 || v[2] <= 0) {
      std::fprintf(stderr, "bench_gemm: '%s' is not T,OC,IC (positive integers) nor --attention T,H,D\n", argv[i]);
      return 1;
    }
    shapes.push_back({v[0], v[1], v[2]});
  }
  if (argc == 1) {
    // LLaMA-style d=384/ffn=1024/vocab=4096 and d=768/ffn=2048/vocab=32000: attention projection, FFN up/gate,
    // FFN down, output head.
    const int models[2][3] = {{384, 1024, 4096}, {768, 2048, 32000}};
    for (int T : {1, 256, 1024})
      for (const auto& m : models)
        for (auto s : {std::vector<int>{T, m[0], m[0]}, {T, m[1], m[0]}, {T, m[0], m[1]}, {T, m[2], m[0]}})
          shapes.push_back(s);
  }
  if (shapes.empty()) return 0;
  std::printf("oneDNN matmul through unmask::Linear, %d threads, prepacked weights, median of reps\n",
              omp_get_max_threads());
  std::printf("%6s %6s %6s   %9s %9s   %8s %8s   %5s   %9s %9s\n", "T", "OC", "IC", "f32 GF/s", "bf16 GF/s",
              "f32 ms", "bf16 ms", "ratio", "f32 best", "bf16 best");
  for (const auto& s : shapes) bench_linear(s[0], s[1], s[2]);
  return 0;
}
