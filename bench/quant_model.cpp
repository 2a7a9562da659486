// A model file of any tensor types, memory-mapped: AR decode (forward_cached, one token at a time) with the bytes of
// weights it reads per token against the machine's read bandwidth measured in the same run, one step over 256 tokens
// (the model's own attention), peak resident memory, and the mean KL divergence of its logits from a reference (f32)
// file. Run one process per file so that the peak resident memory is the file's own. --json: one JSON object.
//
//   bench_quant_model MODEL.gguf [--ref F32.gguf] [--decode 64] [--reps 5] [--threads 2] [--json 1]
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/base/rng.h"
#include "unmask/base/timer.h"
#include "unmask/model/model.h"

using namespace unmask;

namespace {

struct Args {
  std::string model, ref;
  int decode = 64, reps = 5, threads = 0, step = 256;
  bool json = false;
};

// The machine's read bandwidth (GB/s): the median time of summing a 1 GiB buffer as 64-bit integers (exact, so the
// compiler vectorizes the reduction) with every thread (OpenMP, the kernels' threads), far larger than the caches.
double read_bandwidth(int reps) {
  std::vector<uint64_t> buf(size_t(1) << 27, 1);
  volatile uint64_t sink = 0;
  const double s = median_seconds(reps, [&] {
    uint64_t total = 0;
    const int64_t n = int64_t(buf.size());
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int64_t i = 0; i < n; ++i) total += buf[size_t(i)];
    sink = total;
  });
  (void)sink;
  return double(buf.size() * sizeof(uint64_t)) / s / 1e9;
}

// Bytes of weights an AR decode step reads: every tensor but the embedding table, of which it reads one row (unless
// the embedding is also the output projection).
double decode_bytes(const Model& m) {
  double bytes = 0;
  for (const auto& [spec, view] : m.weights().tensors())
    if (spec.name != "token_embd.weight" || m.config().tied_output) bytes += double(view.nbytes());
  return bytes;
}

std::vector<int32_t> random_tokens(int n, int vocab) {
  Rng rng(7);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng.below(uint64_t(vocab)));
  return t;
}

// One bidirectional step over tokens: its logits, and the median seconds of reps passes (the batch and the logits
// allocated outside the timed section).
std::vector<float> step_logits(Model& m, const std::vector<int32_t>& tokens, int reps, double* seconds) {
  Batch b;
  b.add(tokens);
  std::vector<float> logits(tokens.size() * size_t(m.config().vocab));
  const double s = median_seconds(reps, [&] { m.forward(b, logits.data()); });
  if (seconds) *seconds = s;
  return logits;
}

// FLOPs of the matrix products of one forward over T rows (2 per multiply-add; attention and logits of every row).
double step_flops(const ModelConfig& c, double T) {
  const double d = c.d_model;
  const double per_token = 2 * d * (c.q_dim() + 2.0 * c.kv_dim()) + 2.0 * c.q_dim() * d + 3 * 2 * d * c.ffn +
                           4.0 * T * c.q_dim();
  return T * (c.n_layers * per_token + 2 * d * c.vocab);
}

double decode_seconds_per_token(Model& m, const Args& a) {
  KVCache cache = m.make_cache(a.decode + 1);
  std::vector<float> logits(size_t(m.config().vocab));
  return median_seconds(a.reps, [&] {
    cache.clear();
    int32_t tok = 1;
    for (int i = 0; i < a.decode; ++i) {
      m.forward_cached(cache, {&tok, 1}, logits.data());
      tok = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
  }) / a.decode;
}

double mean_kl(const std::vector<float>& p, const std::vector<float>& q, int V) {
  double total = 0;
  const size_t rows = p.size() / size_t(V);
  for (size_t r = 0; r < rows; ++r) {
    const float* a = p.data() + r * size_t(V);
    const float* b = q.data() + r * size_t(V);
    const double ma = *std::max_element(a, a + V), mb = *std::max_element(b, b + V);
    double sa = 0, sb = 0;
    for (int i = 0; i < V; ++i) sa += std::exp(a[i] - ma), sb += std::exp(b[i] - mb);
    for (int i = 0; i < V; ++i) {
      const double la = a[i] - ma - std::log(sa), lb = b[i] - mb - std::log(sb);
      total += std::exp(la) * (la - lb);
    }
  }
  return total / double(rows);
}

Args parse(int argc, char** argv) {
  Args a;
  check(argc >= 2, "usage: bench_quant_model MODEL.gguf [--ref F32.gguf] [--decode N] [--reps N] [--threads N]");
  a.model = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--ref") a.ref = v;
    else if (k == "--decode") a.decode = std::stoi(v);
    else if (k == "--reps") a.reps = std::stoi(v);
    else if (k == "--threads") a.threads = std::stoi(v);
    else if (k == "--json") a.json = v != "0";
    else fail("unknown flag {}", k);
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    set_num_threads(a.threads);
    Model m = Model::load(a.model);
    const ModelConfig& c = m.config();
    const double file_bytes = double(std::filesystem::file_size(a.model));
    const auto tokens = random_tokens(a.step, c.vocab);
    const double s_decode = decode_seconds_per_token(m, a);
    double s_step = 0;
    const std::vector<float> logits = step_logits(m, tokens, a.reps, &s_step);
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    const double bytes = decode_bytes(m), bandwidth = read_bandwidth(a.reps);
    double kl = -1;
    if (!a.ref.empty()) {
      Model r = Model::load(a.ref);
      kl = mean_kl(step_logits(r, tokens, 1, nullptr), logits, c.vocab);
    }
    if (a.json) {
      fmt::print("{{\"model\": \"{}\", \"file_mb\": {:.2f}, \"params\": {}, \"threads\": {}, \"decode_tok_s\": {:.2f}, "
                 "\"decode_gb_s\": {:.2f}, \"read_gb_s\": {:.2f}, \"step_tokens\": {}, \"step_tok_s\": {:.2f}, "
                 "\"step_gflops\": {:.1f}, \"peak_rss_mb\": {:.1f}, \"mean_kl\": {:.6g}}}\n",
                 a.model, file_bytes / 1e6, c.n_params(), num_threads(), 1 / s_decode, bytes / s_decode / 1e9,
                 bandwidth, a.step, a.step / s_step, step_flops(c, a.step) / s_step / 1e9, double(ru.ru_maxrss) / 1e3,
                 kl);
      return 0;
    }
    fmt::print("{}  {:.1f} MB  {:.1f}M params  threads {}\n", a.model, file_bytes / 1e6, double(c.n_params()) / 1e6,
               num_threads());
    fmt::print("  decode      {:8.1f} tok/s  {:7.3f} ms/token  {:6.1f} GB/s of weights read ({:.0f}% of the {:.1f} GB/s "
               "measured)\n", 1 / s_decode, s_decode * 1e3, bytes / s_decode / 1e9,
               100 * bytes / s_decode / 1e9 / bandwidth, bandwidth);
    fmt::print("  step {:3d}    {:8.1f} tok/s  {:7.1f} ms        {:6.1f} GFLOP/s\n", a.step, a.step / s_step,
               s_step * 1e3, step_flops(c, a.step) / s_step / 1e9);
    fmt::print("  peak RSS    {:8.1f} MB\n", double(ru.ru_maxrss) / 1e3);
    if (kl >= 0) fmt::print("  mean KL vs {}: {:.3g} (over {} positions)\n", a.ref, kl, a.step);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_quant_model: {}\n", e.what());
    return 1;
  }
  return 0;
}
