// The batcher: a barrier over the requests still running. Each round it waits until every one of them has asked
// for logits, runs the cached calls one by one and the full passes as one Model::forward, and wakes them.
#include "unmask/sampling/batch.h"

#include <omp.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>

namespace unmask {

namespace {

// One request's call, waiting for the batcher: a full pass (batch set) or a cached call run alone (solo set).
struct Job {
  int request = 0;
  const Batch* batch = nullptr;
  float* logits = nullptr;
  std::span<const int32_t> rows;
  std::function<void()> solo;
  bool done = false;
  std::exception_ptr error;
};

class Batcher {
 public:
  Batcher(Model& m, int requests) : m_(m), active_(requests) {}

  // Called from a request's thread: blocks until the batcher has run the job; rethrows its error.
  void submit(Job& j) {
    std::unique_lock lk(mu_);
    pending_.push_back(&j);
    wake_batcher_.notify_one();
    wake_requests_.wait(lk, [&] { return j.done; });
    if (j.error) std::rethrow_exception(j.error);
  }
  // Called once by each request when it has finished (or failed): the barrier stops waiting for it.
  void leave() {
    std::lock_guard lk(mu_);
    --active_;
    wake_batcher_.notify_one();
  }
  // Called by the caller's thread: serves rounds until every request has left.
  void serve() {
    for (;;) {
      std::vector<Job*> round;
      {
        std::unique_lock lk(mu_);
        wake_batcher_.wait(lk, [&] { return int(pending_.size()) == active_; });
        if (active_ == 0) return;
        round.swap(pending_);
      }
      run_round(round);
      std::lock_guard lk(mu_);
      for (Job* j : round) j->done = true;
      wake_requests_.notify_all();
    }
  }
  int model_calls() const { return model_calls_; }
  int shared_passes() const { return shared_passes_; }

 private:
  void run_round(std::vector<Job*>& round) {
    std::sort(round.begin(), round.end(), [](const Job* a, const Job* b) { return a->request < b->request; });
    std::vector<Job*> full;
    for (Job* j : round) {
      if (!j->solo) {
        full.push_back(j);
        continue;
      }
      try {
        ++model_calls_;
        j->solo();
      } catch (...) {
        j->error = std::current_exception();
      }
    }
    if (full.empty()) return;
    try {
      run_shared(full);
    } catch (...) {
      for (Job* j : full) j->error = std::current_exception();
    }
  }

  // The sequences of every job concatenated into one Batch, each job's rows moved by its first token's offset.
  void run_shared(std::span<Job* const> full) {
    Batch all;
    std::vector<int32_t> rows;
    std::vector<size_t> first_row;
    for (const Job* j : full) {
      const Batch& b = *j->batch;
      const int32_t offset = int32_t(all.tokens.size());
      for (size_t s = 0; s + 1 < b.begin.size(); ++s)
        all.add(std::span(b.tokens).subspan(size_t(b.begin[s]), size_t(b.begin[s + 1] - b.begin[s])));
      first_row.push_back(rows.size());
      for (int32_t r : j->rows) rows.push_back(r + offset);
      if (j->rows.empty())  // Model::forward's convention: no rows means every row
        for (int32_t r = 0; r < int32_t(b.tokens.size()); ++r) rows.push_back(r + offset);
    }
    first_row.push_back(rows.size());
    const size_t V = size_t(m_.config().vocab);
    std::vector<float> logits(rows.size() * V);
    ++model_calls_;
    if (full.size() > 1) ++shared_passes_;
    m_.forward(all, logits.data(), rows);
    for (size_t i = 0; i < full.size(); ++i)
      std::copy(logits.begin() + ptrdiff_t(first_row[i] * V), logits.begin() + ptrdiff_t(first_row[i + 1] * V),
                full[i]->logits);
  }

  Model& m_;
  std::mutex mu_;
  std::condition_variable wake_batcher_, wake_requests_;
  std::vector<Job*> pending_;
  int active_;
  int model_calls_ = 0, shared_passes_ = 0;
};

// A request's view of the model: full passes go to the batcher; cached calls run alone on the request's own cache.
class Proxy final : public Backbone {
 public:
  Proxy(Batcher& b, Model& m, int request) : b_(b), own_(m), request_(request) {}
  const ModelConfig& config() const override { return own_.config(); }
  void forward(const Batch& batch, float* logits, std::span<const int32_t> rows) override {
    Job j;
    j.request = request_, j.batch = &batch, j.logits = logits, j.rows = rows;
    b_.submit(j);
  }
  void forward_cached(std::span<const int32_t> tokens, float* logits, std::span<const int32_t> rows,
                      bool commit) override {
    solo([&] { own_.forward_cached(tokens, logits, rows, commit); });
  }
  void forward_window(int begin, std::span<const int32_t> tokens, float* logits,
                      std::span<const int32_t> rows) override {
    solo([&] { own_.forward_window(begin, tokens, logits, rows); });
  }
  // The cache is touched by the batcher only while this request waits in submit(), so reading it here is safe.
  int cached() const override { return own_.cached(); }
  void truncate(int n) override { own_.truncate(n); }

 private:
  void solo(std::function<void()> call) {
    Job j;
    j.request = request_, j.solo = std::move(call);
    b_.submit(j);
  }
  Batcher& b_;
  ModelBackbone own_;
  int request_;
};

void run_request(Batcher& b, Model& m, int i, const Request& q, BatchOutcome& out, int omp_threads) {
  omp_set_num_threads(omp_threads);  // OpenMP's thread count is per thread: use the caller's
  try {
    Proxy p(b, m, i);
    out.result = q.canvas ? generate_canvas(p, q.cfg, *q.canvas, q.on_step) : generate(p, q.cfg, q.prompt, q.on_step);
  } catch (const std::exception& e) {
    out.error = e.what();
  } catch (...) {
    out.error = "unknown error";
  }
  b.leave();
}

}  // namespace

BatchResult generate_batch(Model& model, std::span<const Request> requests) {
  BatchResult res;
  res.outcomes.resize(requests.size());
  Batcher b(model, int(requests.size()));
  const int omp_threads = omp_get_max_threads();
  std::vector<std::thread> threads;
  threads.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    try {
      threads.emplace_back(run_request, std::ref(b), std::ref(model), int(i), std::cref(requests[i]),
                           std::ref(res.outcomes[i]), omp_threads);
    } catch (const std::system_error& e) {
      res.outcomes[i].error = std::string("could not start the request's thread: ") + e.what();
      b.leave();
    }
  }
  b.serve();
  for (std::thread& t : threads) t.join();
  res.model_calls = b.model_calls();
  res.shared_passes = b.shared_passes();
  return res;
}

}  // namespace unmask
