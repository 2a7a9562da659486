// Mixed-precision training: the bf16 linear backward against its scalar twin, and a bf16 run's loss curve against
// the f32 run's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <vector>

#include "unmask/base/rng.h"
#include "unmask/io/gguf.h"
#include "unmask/kernels/backward.h"
#include "unmask/tensor/dtype.h"
#include "unmask/tokenizer/train.h"
#include "unmask/tokenizer/vocab.h"
#include "unmask/train/shards.h"
#include "unmask/train/trainer.h"

namespace unmask {
namespace {

namespace fs = std::filesystem;

std::vector<float> randn(size_t n, Rng& r) {
  std::vector<float> v(n);
  for (auto& x : v) x = float(r.uniform() * 2 - 1);
  return v;
}

// Both sides multiply the same bf16 values, whose products are exact in f32; only the order and precision of the
// K-term sums differ: at most about K · eps_f32 · Σ|a_k b_k| (+ eps · |c| for an accumulated c).
TEST(Bf16, LinearBackwardMatchesItsScalarTwin) {
  Rng r(3);
  for (auto [T, OC, IC] : {std::tuple{37, 29, 53}, std::tuple{1, 7, 5}, std::tuple{130, 96, 17}}) {
    auto dout = randn(size_t(T) * OC, r), x = randn(size_t(T) * IC, r), w32 = randn(size_t(OC) * IC, r);
    std::vector<uint16_t> w(w32.size());
    from_f32(DType::BF16, w32.data(), w.data(), int64_t(w.size()));
    auto dw0 = randn(size_t(OC) * IC, r), db0 = randn(size_t(OC), r);
    std::vector<float> dx(size_t(T) * IC), dx_ref(dx.size()), dw = dw0, dw_ref = dw0, db = db0, db_ref = db0;
    linear_backward_bf16(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), T, OC, IC);
    ref::linear_backward_bf16(dx_ref.data(), dw_ref.data(), db_ref.data(), dout.data(), x.data(), w.data(), T, OC, IC);
    const double eps = std::numeric_limits<float>::epsilon();
    auto b16 = [](float v) { return double(bf16_to_f32(f32_to_bf16(v))); };
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < IC; ++i) {
        double s = 0;
        for (int o = 0; o < OC; ++o) s += std::abs(b16(dout[size_t(t * OC + o)]) * bf16_to_f32(w[size_t(o * IC + i)]));
        ASSERT_LE(std::abs(dx[size_t(t * IC + i)] - dx_ref[size_t(t * IC + i)]), OC * eps * s + 1e-30)
            << "dx (" << t << ", " << i << "), T " << T << " OC " << OC << " IC " << IC;
      }
    for (int o = 0; o < OC; ++o) {
      for (int i = 0; i < IC; ++i) {
        double s = std::abs(dw0[size_t(o * IC + i)]);
        for (int t = 0; t < T; ++t) s += std::abs(b16(dout[size_t(t * OC + o)]) * b16(x[size_t(t * IC + i)]));
        ASSERT_LE(std::abs(dw[size_t(o * IC + i)] - dw_ref[size_t(o * IC + i)]), (T + 1) * eps * s)
            << "dw (" << o << ", " << i << ")";
      }
      double s = std::abs(db0[size_t(o)]);
      for (int t = 0; t < T; ++t) s += std::abs(dout[size_t(t * OC + o)]);
      ASSERT_LE(std::abs(db[size_t(o)] - db_ref[size_t(o)]), (T + 1) * eps * s) << "db " << o;
    }
  }
}

fs::path make_data() {
  fs::path dir = fs::temp_directory_path() / ("unmask_bf16_test_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  Rng r(1);
  std::vector<int32_t> t(20000);
  for (auto& x : t) x = int32_t(97 + (r.below(4) == 0 ? r.below(26) : r.below(5)));  // skewed: something to learn
  write_shard((dir / "train.bin").string(), std::span(t).first(18000), 260);
  write_shard((dir / "val.bin").string(), std::span(t).subspan(18000), 260);
  gguf::Writer w;
  vocab_to_gguf(byte_level_vocab(), w);
  w.write((dir / "tokenizer.gguf").string());
  return dir;
}

std::vector<double> losses(const fs::path& data, const std::string& objective, bool bf16) {
  TrainConfig c;
  c.objective = objective, c.preset = "tiny", c.layers = 2, c.d_model = 64, c.heads = 4, c.ffn = 128;
  c.data_dir = data.string(), c.out_dir = (data / (objective + (bf16 ? "_bf16" : "_f32"))).string();
  c.steps = 25, c.batch = 4, c.seq_len = 32, c.warmup = 5, c.lr = 3e-3f, c.eval_every = 1000, c.eval_batches = 1;
  c.ckpt_every = 1000, c.bf16 = bf16;
  std::vector<double> out;
  Trainer::start(c).run([&](const StepReport& r) { out.push_back(r.loss); });
  return out;
}

// First order, each GEMM on the path from the weights to the logits perturbs its output by at most 2u relative
// (u = 2^-9, bf16's unit roundoff, for each of its two rounded operands); with G = 4 per layer + 1 output GEMMs the
// logits move by at most 2uG relative, and CE, 1-Lipschitz in each logit's share, by as much relative to the loss.
// Over a short run the trajectories have not separated, so each step's loss stays within that relative band; the
// bf16 run must also differ from the f32 one somewhere (or the bf16 path was not taken).
TEST(Bf16, LossCurveTracksTheF32Run) {
  fs::path data = make_data();
  for (const char* objective : {"ar", "mdlm"}) {
    auto f32 = losses(data, objective, false), b16 = losses(data, objective, true);
    ASSERT_EQ(f32.size(), b16.size());
    const double u = std::ldexp(1.0, -9), G = 4 * 2 + 1, rel = 2 * u * G;
    bool differs = false;
    for (size_t s = 0; s < f32.size(); ++s) {
      EXPECT_LE(std::abs(b16[s] - f32[s]), rel * std::abs(f32[s]))
          << objective << " step " << s + 1 << ": f32 " << f32[s] << ", bf16 " << b16[s];
      differs |= b16[s] != f32[s];
    }
    EXPECT_TRUE(differs) << objective << ": the bf16 run equals the f32 run bit for bit";
    EXPECT_LT(b16.back(), b16.front() - 0.5) << objective << ": the bf16 run did not learn";
  }
  fs::remove_all(data);
}

}  // namespace
}  // namespace unmask
