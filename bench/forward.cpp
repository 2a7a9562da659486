// Forward-pass benchmark: the bidirectional pass over T tokens, the causal decode step with the KV cache, and the
// GEMM ceiling for the model's own shapes, measured in the same run. Prints one JSON object per line (for
// bench/compare_torch.py) or a table.
//
//   bench_forward --config small --type f32 --tokens 256,1024 [--bidir FILE --causal FILE] [--reps 5] [--threads 2]
//
// --type is any `unmask quantize --type` (f32, f16, bf16, q8_0, q4_k_m, ...): random f32 weights written in that
// scheme to a temporary file and read back memory-mapped, as a downloaded file is. The GEMM ceiling is oneDNN's on
// bf16 weights for bf16, on f32 weights for every other type (quantized and f16 weights have no oneDNN path here).
#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/base/rng.h"
#include "unmask/base/timer.h"
#include "unmask/io/gguf.h"
#include "unmask/kernels/gemm.h"
#include "unmask/model/model.h"
#include "unmask/model/quantize.h"

using namespace unmask;

namespace {

struct Args {
  std::string config = "small", type = "f32", bidir, causal;  // model files; random weights when absent
  std::vector<int> tokens = {256, 1024};
  int reps = 5, decode = 64, prefix = 64, threads = 0;
};

// FLOPs of one forward over T query rows seeing n_keys keys each on average, logits for all rows.
double forward_flops(const ModelConfig& c, double T, double n_keys) {
  double d = c.d_model, per_token = 0;
  per_token += 2 * d * (c.q_dim() + 2.0 * c.kv_dim()) + 2.0 * c.q_dim() * d;  // q, k, v, o
  per_token += 3 * 2 * d * c.ffn;                                            // gate, up, down
  per_token += 4.0 * n_keys * c.q_dim();                                     // scores and weighted values
  return T * (c.n_layers * per_token + 2 * d * c.vocab);
}

// The best GFLOP/s oneDNN reaches on the model's GEMM shapes at T rows: the ceiling a forward pass can approach.
double gemm_ceiling(ModelConfig c, int T, int reps) {
  if (c.wtype != DType::BF16) c.wtype = DType::F32;
  const int shapes[][2] = {{c.ffn, c.d_model}, {c.d_model, c.ffn}, {c.q_dim(), c.d_model}, {c.vocab, c.d_model}};
  Rng rng(3);
  double best = 0;
  for (const auto& s : shapes) {
    int OC = s[0], IC = s[1];
    std::vector<float> w(size_t(OC) * IC), x(size_t(T) * IC), out(size_t(T) * OC);
    for (auto& v : w) v = float(rng.normal() * 0.02);
    for (auto& v : x) v = float(rng.normal());
    std::vector<uint16_t> wb(w.size());
    from_f32(c.wtype, w.data(), c.wtype == DType::BF16 ? (void*)wb.data() : (void*)w.data(), int64_t(w.size()));
    Linear lin(c.wtype == DType::BF16 ? (const void*)wb.data() : (const void*)w.data(), c.wtype, OC, IC);
    double sec = median_seconds(reps, [&] { lin.forward(out.data(), x.data(), T); });
    best = std::max(best, 2.0 * T * OC * IC / sec / 1e9);
  }
  return best;
}

// A random model of configuration c with its tensors in `type` (a quantization scheme's name).
Model random_model(ModelConfig c, const std::string& type) {
  const QuantScheme s = parse_quant_scheme(type);
  c.wtype = DType::F32;
  Model f32 = Model::random(c, 1);
  if (s == QuantScheme::kF32) return f32;
  gguf::Writer w;
  write_config(c, w);
  mark_vocabulary(w);
  std::vector<std::vector<uint8_t>> store;
  add_quantized_tensors(w, f32.weights(), c, s, store);
  const auto path = std::filesystem::temp_directory_path() / fmt::format("bench_forward_{}_{}.gguf", getpid(), type);
  w.write(path.string());
  Model m = Model::load(path.string());  // mapped: the file's data stays readable once unlinked
  std::filesystem::remove(path);
  return m;
}

void bench_bidirectional(Model& m, int T, int reps, double ceiling) {
  const ModelConfig& c = m.config();
  Rng rng(T);
  Batch b;
  std::vector<int32_t> tokens(static_cast<size_t>(T));
  for (auto& t : tokens) t = int32_t(rng.below(uint64_t(c.vocab)));
  b.add(tokens);
  std::vector<float> logits(size_t(T) * c.vocab);
  double sec = median_seconds(reps, [&] { m.forward(b, logits.data()); });
  double gflops = forward_flops(c, T, T) / sec / 1e9;
  fmt::print("{{\"bench\": \"forward\", \"tokens\": {}, \"seconds\": {:.6f}, \"tok_per_s\": {:.1f}, \"gflops\": {:.1f}, "
             "\"gemm_ceiling_gflops\": {:.1f}, \"fraction_of_ceiling\": {:.3f}}}\n",
             T, sec, T / sec, gflops, ceiling, gflops / ceiling);
}

void bench_decode(Model& m, const Args& a) {
  const ModelConfig& c = m.config();
  KVCache cache = m.make_cache(a.prefix + a.decode + 1);
  std::vector<int32_t> prefix(static_cast<size_t>(a.prefix), 1);
  std::vector<float> logits(size_t(a.prefix) * c.vocab);
  auto run = [&] {
    cache.clear();
    m.forward_cached(cache, prefix, logits.data());
    Timer t;
    int32_t tok = 2;
    for (int i = 0; i < a.decode; ++i) {
      m.forward_cached(cache, {&tok, 1}, logits.data());
      tok = int32_t(std::max_element(logits.begin(), logits.begin() + c.vocab) - logits.begin());
    }
    return t.seconds();
  };
  run();
  std::vector<double> t;
  for (int i = 0; i < a.reps; ++i) t.push_back(run());
  std::sort(t.begin(), t.end());
  double sec = t[t.size() / 2] / a.decode;
  double weight_bytes = double(m.weights().nbytes());  // each weight is read once per token
  fmt::print("{{\"bench\": \"decode\", \"prefix\": {}, \"steps\": {}, \"tok_per_s\": {:.1f}, \"ms_per_token\": {:.3f}, "
             "\"weight_bytes\": {:.0f}, \"gb_per_s\": {:.2f}}}\n",
             a.prefix, a.decode, 1 / sec, sec * 1e3, weight_bytes, weight_bytes / sec / 1e9);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--config") a.config = v;
    else if (k == "--type") a.type = v;
    else if (k == "--bidir") a.bidir = v;
    else if (k == "--causal") a.causal = v;
    else if (k == "--reps") a.reps = std::stoi(v);
    else if (k == "--decode") a.decode = std::stoi(v);
    else if (k == "--threads") a.threads = std::stoi(v);
    else if (k == "--tokens") {
      a.tokens.clear();
      for (size_t p = 0; p < v.size();) {
        size_t q = v.find(',', p);
        a.tokens.push_back(std::stoi(v.substr(p, q - p)));
        p = q == std::string::npos ? v.size() : q + 1;
      }
    } else {
      throw Error(fmt::format("unknown flag {}", k));
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    set_num_threads(a.threads);
    ModelConfig c = preset_config(a.config);
    c.arch = "llada", c.mask = MaskKind::kBidirectional;
    Model bidir = a.bidir.empty() ? random_model(c, a.type) : Model::load(a.bidir);
    fmt::print("{{\"bench\": \"model\", \"params\": {}, \"type\": \"{}\", \"threads\": {}}}\n",
               bidir.config().n_params(), dtype_name(bidir.config().wtype), num_threads());
    for (int T : a.tokens) bench_bidirectional(bidir, T, a.reps, gemm_ceiling(bidir.config(), T, a.reps));
    ModelConfig cc = bidir.config();
    cc.arch = "llama", cc.mask = MaskKind::kCausal;
    Model causal = a.causal.empty() ? random_model(cc, a.type) : Model::load(a.causal);
    bench_decode(causal, a);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench_forward: {}\n", e.what());
    return 1;
  }
  return 0;
}
