// Requests run as one batch give exactly the tokens each gives alone, with fewer model calls; a failing request
// leaves the others running; the thread count changes nothing.
#include "unmask/sampling/batch.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

namespace unmask {
namespace {

// A tiny random LLaDA-style model whose logits are scaled by 12 (its final norm): the random model's logits are
// otherwise so flat that top choices differ in the 6th digit, within the float rounding that a larger batch's GEMMs
// may change. Scaled, selection margins lie far above it (as in tests/reference/test_generate.py).
Model decisive_model(uint64_t seed, const char* preset = "tiny") {
  ModelConfig c = preset_config(preset);
  const ArchInfo& a = arch_info("llada");
  c.arch = "llada", c.mask = a.mask, c.rope = a.rope, c.qkv_bias = a.qkv_bias, c.shift_logits = a.shift_logits;
  c.mask_token = c.vocab - 1, c.eos_token = 2;
  Model m = Model::random(c, seed);
  std::span<float> p = m.params();
  const size_t off = m.weights().offset_of(m.weights().get().output_norm);
  for (int i = 0; i < c.d_model; ++i) p[off + size_t(i)] *= 12.0f;
  m.params_changed();
  return m;
}

Request request(SamplerKind kind, int gen_length, int steps, uint64_t seed, std::vector<int32_t> prompt) {
  Request q;
  q.cfg.kind = kind, q.cfg.gen_length = gen_length, q.cfg.steps = steps, q.cfg.seed = seed;
  q.prompt = std::move(prompt);
  return q;
}

// Three samplers with different settings, lengths and seeds (temperature > 0, CFG's sequence pair, MDLM's skipped
// passes).
std::vector<Request> mixed_requests() {
  std::vector<Request> r;
  r.push_back(request(SamplerKind::kLlada, 16, 8, 123, {11, 25, 7, 301, 42}));
  r.back().cfg.block_length = 8, r.back().cfg.temperature = 1, r.back().cfg.cfg_scale = 1;
  r.push_back(request(SamplerKind::kDream, 12, 6, 5, {3, 9, 100}));
  r.back().cfg.alg = DreamAlg::kEntropy, r.back().cfg.temperature = 0.7;
  r.push_back(request(SamplerKind::kMdlm, 20, 10, 9, {17, 18, 19, 20, 21, 22, 23}));
  r.back().cfg.temperature = 1;
  return r;
}

GenerateResult alone(Model& m, const Request& q) {
  ModelBackbone bb(m);
  return q.canvas ? generate_canvas(bb, q.cfg, *q.canvas) : generate(bb, q.cfg, q.prompt);
}

// Each outcome succeeded and equals the request's solo run; returns the solo runs' forward passes in total.
int expect_same_as_alone(Model& m, std::span<const Request> reqs, const BatchResult& b) {
  int passes = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_TRUE(b.outcomes[i].ok()) << "request " << i << ": " << b.outcomes[i].error;
    GenerateResult solo = alone(m, reqs[i]);
    EXPECT_EQ(b.outcomes[i].result.canvas, solo.canvas) << "request " << i;
    EXPECT_EQ(b.outcomes[i].result.commit_step, solo.commit_step) << "request " << i;
    EXPECT_EQ(b.outcomes[i].result.stats.forward_passes, solo.stats.forward_passes) << "request " << i;
    passes += solo.stats.forward_passes;
  }
  return passes;
}

TEST(Batch, EachRequestGetsItsSoloTokensWithFewerModelCalls) {
  Model m = decisive_model(7);
  const std::vector<Request> reqs = mixed_requests();
  BatchResult b = generate_batch(m, reqs);
  ASSERT_EQ(b.outcomes.size(), reqs.size());
  const int passes = expect_same_as_alone(m, reqs, b);
  EXPECT_LT(b.model_calls, passes);
  EXPECT_GT(b.shared_passes, 0);
  // Every round serves every request still running, so the calls are as many as the longest request's passes.
  int longest = 0;
  for (const BatchOutcome& o : b.outcomes) longest = std::max(longest, o.result.stats.forward_passes);
  EXPECT_EQ(b.model_calls, longest);
}

TEST(Batch, CachedRequestsGetTheirSoloTokensInsideTheBatch) {
  Model m = decisive_model(8);
  std::vector<Request> reqs = mixed_requests();
  reqs.push_back(request(SamplerKind::kLlada, 16, 8, 4, {5, 6, 7}));
  reqs.back().cfg.block_length = 8, reqs.back().cfg.cache = CacheMode::kDual;
  reqs.push_back(request(SamplerKind::kLlada, 16, 16, 4, {5, 6, 7, 8}));
  reqs.back().cfg.block_length = 4, reqs.back().cfg.cache = CacheMode::kPrefix, reqs.back().cfg.threshold = 0.9;
  BatchResult b = generate_batch(m, reqs);
  const int passes = expect_same_as_alone(m, reqs, b);
  EXPECT_LT(b.model_calls, passes);
}

TEST(Batch, AFailingOrCancelledRequestLeavesTheOthersRunning) {
  Model m = decisive_model(9);
  std::vector<Request> reqs = mixed_requests();
  Request bad = request(SamplerKind::kLlada, 8, 0, 1, {1, 2});  // --steps 0
  reqs.insert(reqs.begin() + 1, bad);
  Request cancel = request(SamplerKind::kMdlm, 16, 8, 3, {4, 5});
  std::atomic<int> seen{0};
  cancel.on_step = [&seen](const StepEvent& e) { return ++seen < 2 && e.step < 1; };
  reqs.push_back(cancel);
  Request huge = request(SamplerKind::kDream, 4096, 8, 1, {1});  // beyond the context
  reqs.push_back(huge);
  BatchResult b = generate_batch(m, reqs);
  ASSERT_EQ(b.outcomes.size(), reqs.size());
  EXPECT_FALSE(b.outcomes[1].ok());
  EXPECT_NE(b.outcomes[1].error.find("--steps 0"), std::string::npos) << b.outcomes[1].error;
  EXPECT_FALSE(b.outcomes[5].ok());
  EXPECT_NE(b.outcomes[5].error.find("context"), std::string::npos) << b.outcomes[5].error;
  EXPECT_TRUE(b.outcomes[4].ok()) << b.outcomes[4].error;
  EXPECT_TRUE(b.outcomes[4].result.cancelled);
  EXPECT_EQ(b.outcomes[4].result.stats.steps, 2);
  const std::vector<Request> good{reqs[0], reqs[2], reqs[3]};
  const BatchResult kept{{b.outcomes[0], b.outcomes[2], b.outcomes[3]}, b.model_calls, b.shared_passes};
  expect_same_as_alone(m, good, kept);
}

TEST(Batch, SameOutputWhateverTheThreadCount) {
  Model m = decisive_model(10);
  const std::vector<Request> reqs = mixed_requests();
  std::vector<std::vector<std::vector<int32_t>>> runs;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    BatchResult b = generate_batch(m, reqs);
    runs.emplace_back();
    for (const BatchOutcome& o : b.outcomes) runs.back().push_back(o.result.canvas);
  }
  omp_set_num_threads(2);
  EXPECT_EQ(runs[0], runs[1]);
}

TEST(Batch, NoRequestsIsAnEmptyResult) {
  Model m = decisive_model(11);
  BatchResult b = generate_batch(m, {});
  EXPECT_TRUE(b.outcomes.empty());
  EXPECT_EQ(b.model_calls, 0);
}

}  // namespace
}  // namespace unmask

namespace unmask {
namespace {

// The outcome of a request submitted to a Scheduler, waited for.
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<BatchOutcome> outcome;
  Scheduler::Done done() {
    return [this](BatchOutcome o) {
      std::lock_guard lk(mu);
      outcome = std::move(o);
      cv.notify_all();
    };
  }
  BatchOutcome wait() {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return outcome.has_value(); });
    return *outcome;
  }
};

TEST(Scheduler, ARequestJoiningARunningBatchGetsItsSoloTokens) {
  Model m = decisive_model(12);
  Scheduler s({.parallel = 4, .queue = 4});
  std::thread compute([&] { s.serve(); });
  Request a = request(SamplerKind::kLlada, 24, 24, 3, {11, 25, 7});
  Request b = request(SamplerKind::kDream, 12, 6, 5, {3, 9, 100});
  b.cfg.temperature = 0.7;
  Waiter wa, wb;
  std::atomic<int> a_steps{0}, a_steps_when_b_started{-1};
  // B arrives while A runs (at A's fourth step); B's first step records how far A had gone.
  Request a_live = a;
  a_live.on_step = [&](const StepEvent& e) {
    ++a_steps;
    if (e.step == 3) EXPECT_TRUE(s.submit(m, b, wb.done()));
    return true;
  };
  b.on_step = [&](const StepEvent& e) {
    if (e.step == 0) a_steps_when_b_started = a_steps.load();
    return true;
  };
  ASSERT_TRUE(s.submit(m, a_live, wa.done()));
  const BatchOutcome oa = wa.wait(), ob = wb.wait();
  s.stop();
  compute.join();
  ASSERT_TRUE(oa.ok()) << oa.error;
  ASSERT_TRUE(ob.ok()) << ob.error;
  const Request b_plain = request(SamplerKind::kDream, 12, 6, 5, {3, 9, 100});
  Request b_alone = b_plain;
  b_alone.cfg.temperature = 0.7;
  EXPECT_EQ(oa.result.canvas, alone(m, a).canvas);
  EXPECT_EQ(ob.result.canvas, alone(m, b_alone).canvas);
  EXPECT_GE(a_steps_when_b_started.load(), 4) << "B joined after A had started";
  EXPECT_LT(a_steps_when_b_started.load(), 24) << "B did not wait for A to finish";
  const SchedulerStats st = s.stats();
  EXPECT_GT(st.shared_passes, 0) << "A and B shared passes";
  EXPECT_EQ(st.model_calls, 24) << "B's six passes all rode along with A's 24";
}

TEST(Scheduler, AFullQueueRefusesAndACancelledRequestFreesItsPlace) {
  Model m = decisive_model(13);
  Scheduler s({.parallel = 1, .queue = 1});
  std::thread compute([&] { s.serve(); });
  std::atomic<bool> a_started{false};
  Request a = request(SamplerKind::kMdlm, 64, 64, 1, {1, 2, 3});
  a.cfg.ddpm_cache = false;
  a.on_step = [&](const StepEvent&) { return a_started = true, true; };
  auto cancel_a = std::make_shared<std::atomic<bool>>(false);
  Waiter wa, wb, wq;
  ASSERT_TRUE(s.submit(m, a, wa.done(), cancel_a));
  while (!a_started) std::this_thread::yield();
  const Request b = request(SamplerKind::kLlada, 8, 4, 2, {4, 5});
  ASSERT_TRUE(s.submit(m, b, wb.done())) << "one place in the queue";
  EXPECT_FALSE(s.submit(m, b, wq.done())) << "the queue is full";
  EXPECT_EQ(s.stats().queued, 1);
  *cancel_a = true;
  const BatchOutcome oa = wa.wait();
  EXPECT_TRUE(oa.result.cancelled);
  EXPECT_LT(oa.result.stats.steps, 64);
  const BatchOutcome ob = wb.wait();
  ASSERT_TRUE(ob.ok()) << ob.error;
  EXPECT_EQ(ob.result.canvas, alone(m, b).canvas);
  // A queued request cancelled before it starts reports at once, without a step.
  auto cancel_q = std::make_shared<std::atomic<bool>>(true);
  Waiter wc;
  ASSERT_TRUE(s.submit(m, b, wc.done(), cancel_q));
  EXPECT_TRUE(wc.wait().result.cancelled);
  s.stop();
  compute.join();
  EXPECT_EQ(s.stats().running, 0);
}

// The idle hook (where the server gives memory back) waits for a quiet spell: not when a request leaves while another
// comes at once, but once nothing has come for the given time, and once per spell.
TEST(Scheduler, TheIdleHookWaitsForAQuietSpell) {
  using Clock = std::chrono::steady_clock;
  Model m = decisive_model(14);
  Scheduler s({.parallel = 2, .queue = 2});
  std::atomic<int> fired{0};
  std::atomic<int64_t> fired_at{0};
  s.on_idle(
      [&] {
        fired_at = Clock::now().time_since_epoch().count();
        ++fired;
      },
      std::chrono::milliseconds(1000));
  std::thread compute([&] { s.serve(); });
  const Request q = request(SamplerKind::kLlada, 8, 4, 2, {4, 5});
  Waiter wa, wb;
  ASSERT_TRUE(s.submit(m, q, wa.done()));
  ASSERT_TRUE(wa.wait().ok());
  EXPECT_EQ(fired.load(), 0);
  ASSERT_TRUE(s.submit(m, q, wb.done())) << "the next request comes at once";
  ASSERT_TRUE(wb.wait().ok());
  const Clock::time_point b_done = Clock::now();
  EXPECT_EQ(fired.load(), 0) << "no quiet second yet";
  while (fired.load() == 0 && Clock::now() - b_done < std::chrono::seconds(20))
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(fired.load(), 1);
  EXPECT_GE(Clock::time_point(Clock::duration(fired_at.load())) - b_done, std::chrono::milliseconds(900));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(fired.load(), 1) << "once per quiet spell";
  s.stop();
  compute.join();
}

// The claim docs/server.md makes: a sequence's logits in a batch equal its logits alone, bit for bit, whatever its
// companions (f32 weights: every row of a GEMM is reduced in the same order whatever the number of rows).
TEST(Batch, ASequenceLogitsAreBitForBitTheSameBesideOthers) {
  for (const char* preset : {"tiny", "small"}) {
    SCOPED_TRACE(preset);
    Model m = decisive_model(14, preset);
    const size_t V = size_t(m.config().vocab);
    const std::vector<int32_t> seq = {5, 9, 33, 2, 17, 17, 250, 4, 8};
    Batch one;
    one.add(seq);
    std::vector<float> solo(seq.size() * V);
    m.forward(one, solo.data(), {});
    for (int companions : {1, 3, 7}) {
      Batch many;
      std::vector<int32_t> other;
      for (int c = 0; c < companions; ++c) {
        other.assign(size_t(5 + 13 * c), int32_t(40 + c));
        many.add(other);
      }
      const int32_t offset = int32_t(many.tokens.size());
      many.add(seq);
      std::vector<int32_t> rows(seq.size());
      for (size_t i = 0; i < rows.size(); ++i) rows[i] = offset + int32_t(i);
      std::vector<float> batched(seq.size() * V);
      m.forward(many, batched.data(), rows);
      EXPECT_EQ(0, std::memcmp(solo.data(), batched.data(), solo.size() * sizeof(float)))
          << "beside " << companions << " other sequences";
    }
  }
}

}  // namespace
}  // namespace unmask

namespace unmask {
namespace {

// AR's decode steps continue each request's own cache; the steps of several requests share one pass
// (Model::forward_cached_batch), and each still gets the tokens it gets alone.
TEST(Batch, ArStepsOfSeveralRequestsShareOnePassWithTheirSoloTokens) {
  ModelConfig c = preset_config("tiny");
  c.arch = "llama", c.mask = MaskKind::kCausal, c.eos_token = -1, c.ctx = 96;
  Model m = Model::random(c, 21);
  std::vector<Request> reqs;
  reqs.push_back(request(SamplerKind::kAr, 20, -1, 1, {5, 6, 7}));
  reqs.push_back(request(SamplerKind::kAr, 12, -1, 2, {9}));
  reqs.back().cfg.temperature = 0.8;
  reqs.push_back(request(SamplerKind::kAr, 30, -1, 3, {100, 101, 102, 103, 104, 105}));
  reqs.back().cfg.temperature = 1, reqs.back().cfg.top_k = 20;
  const BatchResult b = generate_batch(m, reqs);
  const int passes = expect_same_as_alone(m, reqs, b);
  EXPECT_EQ(passes, 20 + 12 + 30);
  EXPECT_EQ(b.model_calls, 30) << "one pass per step of the longest request";
  EXPECT_GT(b.shared_passes, 0);
}

}  // namespace
}  // namespace unmask
