// Continuous batching: generation requests join and leave one running batch between rounds. Each request's sampler
// runs on its own thread against a proxy backbone; the proxies hand their full forward passes to the scheduler, whose
// one compute thread waits until every request still running has asked for logits, runs each model once over all
// their sequences, and gives each request its rows. A finished request leaves at once; a new one is admitted at the
// next round (it does not wait for the batch to drain); requests beyond the running limit wait in a bounded queue.
//
//   Scheduler s({.parallel = 4, .queue = 16});
//   std::thread compute([&] { s.serve(); });                 // the one compute team, until s.stop()
//   s.submit(model, request, [](BatchOutcome o) { ... });    // from any thread; false when the queue is full
//
//   BatchResult b = generate_batch(model, reqs);             // or: a fixed set of requests, served until all are done
//
// A request's tokens do not depend on its companions: its random streams depend only on its seed, step and position,
// and each sequence of a Batch attends only within itself. (The logits of a sequence can differ from a solo pass by
// float rounding of the larger GEMMs; a choice decided by a margin of that size may then differ: docs/server.md.)
// Cached passes (AR's KV cache, bd3's block cache, --cache prefix/dual, spec) keep a cache per request. Steps that
// continue a request's cache (AR's decode steps, bd3's blocks) share one pass per model as well
// (Model::forward_cached_batch: each cache keeps its own keys); window and draft passes run alone in the round.
// Only the compute thread calls a model, so OpenMP regions inside it never overlap; the request threads choose their
// tokens with one thread each (no second OpenMP team). Step callbacks and `done` run on the request's thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "unmask/model/model.h"
#include "unmask/sampling/sampler.h"

namespace unmask {

struct Request {
  SamplerConfig cfg;              // cfg.seed is the request's seed
  std::vector<int32_t> prompt;    // generate(): the prompt followed by cfg.gen_length masks
  std::optional<Canvas> canvas;   // set: generate_canvas() over this canvas instead (prompt is ignored)
  StepCallback on_step;           // optional; called on the request's own thread
};

struct BatchOutcome {
  GenerateResult result;  // empty when the request failed
  std::string error;      // the request's Error message; empty when it succeeded
  bool ok() const { return error.empty(); }
};

struct SchedulerLimits {
  int parallel = 4;  // requests decoding at once
  int queue = 16;    // requests waiting for a place; submit() refuses one more
};

// What the compute thread has done so far.
struct SchedulerStats {
  int64_t rounds = 0;          // rounds served
  int64_t model_calls = 0;     // shared full passes plus each cached call
  int64_t full_passes = 0;     // passes over several requests' sequences or caches (each model's, per round)
  int64_t shared_passes = 0;   // full passes that served more than one request
  int64_t sequences = 0;       // sequences run in full passes (a CFG pair counts two)
  int64_t positions = 0;       // token positions run in full passes
  int running = 0, queued = 0;
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerLimits limits);
  // Stops, cancels what is still running or queued and joins every request thread; call it once serve() has returned.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  using Done = std::function<void(BatchOutcome)>;
  // Queues a request against `model` (which must outlive it); false, keeping nothing, when the queue is full. `done`
  // receives the outcome on the request's thread. Once `cancel` is set the request stops at its next step (a queued
  // one never starts): its result has cancelled = true.
  bool submit(Model& model, Request q, Done done, std::shared_ptr<std::atomic<bool>> cancel = {});

  // The compute loop, on the calling thread: serves rounds until stop(), or with until_idle until nothing is running
  // or queued.
  void serve(bool until_idle = false);
  void stop();  // serve() returns after the round in progress; running requests are cancelled
  // Called on the compute thread once the last running request has left and nothing has come for `after` (the
  // server gives memory back there); set it before serve().
  void on_idle(std::function<void()> hook, std::chrono::milliseconds after = {}) {
    idle_hook_ = std::move(hook), idle_after_ = after;
  }
  SchedulerStats stats() const;

  struct Job;  // one request's model call waiting for the compute thread (batch.cpp)

  // Called from a request's thread (its proxy backbone): blocks until the compute thread has run the job.
  void call(Job& j);

 private:
  struct Entry;
  void admit_locked();
  void run_request(Entry& e);
  void run_round(std::vector<Job*>& round, SchedulerStats& st);  // st: what the round added
  void run_grouped(std::vector<Job*>& jobs, bool cached, SchedulerStats& st);
  void run_pass(Model& m, std::span<Job* const> jobs, bool cached, SchedulerStats& st);

  SchedulerLimits limits_;
  mutable std::mutex mu_;
  std::condition_variable wake_compute_, wake_requests_;
  std::list<std::unique_ptr<Entry>> queue_, running_;
  std::vector<std::thread> finished_;  // threads whose request has left, to join
  std::vector<Job*> pending_;
  bool stopping_ = false;
  int64_t next_order_ = 0;
  std::function<void()> idle_hook_;
  std::chrono::milliseconds idle_after_{};
  SchedulerStats stats_;
};

struct BatchResult {
  std::vector<BatchOutcome> outcomes;  // one per request, in order
  int model_calls = 0;                 // Model calls made: shared full passes plus each cached call
  int shared_passes = 0;               // full passes that served more than one request
};

// Runs a fixed set of requests together on the calling thread's compute team. A request that fails (a bad
// configuration, a model error) records its error and leaves the batch; the others go on.
BatchResult generate_batch(Model& model, std::span<const Request> requests);

}  // namespace unmask
