// The scheduler: a barrier over the requests still running. Each round the compute thread waits until every one of
// them has asked for logits, runs the cached calls one by one and each model's full passes as one Model::forward,
// and wakes them. Requests are admitted from the queue whenever a place is free, and leave as soon as they finish.
#include "unmask/sampling/batch.h"

#include <omp.h>

#include <algorithm>
#include <exception>
#include <system_error>

namespace unmask {

// One request's call, waiting for the compute thread: a full pass (batch set), a step continuing the request's cache
// (cache set; such steps of one model share a pass too), or another cached call run alone (solo set).
struct Scheduler::Job {
  Model* model = nullptr;
  int64_t order = 0;  // the request's admission number: rounds serve requests in a fixed order
  const Batch* batch = nullptr;
  KVCache* cache = nullptr;
  std::span<const int32_t> tokens;  // cache: the span that continues it
  bool commit = false;
  float* logits = nullptr;
  std::span<const int32_t> rows;
  std::function<void()> solo;
  bool done = false;
  std::exception_ptr error;
};

struct Scheduler::Entry {
  Model* model = nullptr;
  Request q;
  Done done;
  std::shared_ptr<std::atomic<bool>> cancel;
  int64_t order = 0;
  std::thread thread;
};

namespace {

// A request's view of the model: full passes and steps over its own cache go to the scheduler's round, where they
// share passes with the other requests'; window and draft passes run alone on the compute thread.
class Proxy final : public Backbone {
 public:
  // cache_positions: what the request's cache must hold (its canvas), not the model's whole context.
  Proxy(Scheduler& s, Model& m, int64_t order, int cache_positions)
      : s_(s), m_(m), own_(m, std::min(cache_positions, m.config().ctx)), order_(order) {}
  const ModelConfig& config() const override { return own_.config(); }
  void forward(const Batch& batch, float* logits, std::span<const int32_t> rows) override {
    Scheduler::Job j;
    j.model = &m_, j.order = order_, j.batch = &batch, j.logits = logits, j.rows = rows;
    s_.call(j);
  }
  void forward_cached(std::span<const int32_t> tokens, float* logits, std::span<const int32_t> rows,
                      bool commit) override {
    Scheduler::Job j;
    j.model = &m_, j.order = order_, j.cache = &own_.cache(), j.tokens = tokens, j.commit = commit;
    j.logits = logits, j.rows = rows;
    s_.call(j);
  }
  void forward_window(int begin, std::span<const int32_t> tokens, float* logits,
                      std::span<const int32_t> rows) override {
    solo([&] { own_.forward_window(begin, tokens, logits, rows); });
  }
  void forward_draft(std::span<const int32_t> tokens, int from, float* logits,
                     std::span<const int32_t> rows) override {
    solo([&] { own_.forward_draft(tokens, from, logits, rows); });
  }
  // The cache is touched by the compute thread only while this request waits in call(), so using it here is safe.
  int cached() const override { return own_.cached(); }
  void truncate(int n) override { own_.truncate(n); }
  void advance(int n) override { own_.advance(n); }

 private:
  void solo(std::function<void()> fn) {
    Scheduler::Job j;
    j.model = &m_, j.order = order_, j.solo = std::move(fn);
    s_.call(j);
  }
  Scheduler& s_;
  Model& m_;
  ModelBackbone own_;
  int64_t order_;
};

}  // namespace

Scheduler::Scheduler(SchedulerLimits limits) : limits_(limits) {
  limits_.parallel = std::max(limits_.parallel, 1);
  limits_.queue = std::max(limits_.queue, 0);
}

Scheduler::~Scheduler() {
  stop();
  serve(true);  // whatever still runs is cancelled: serve it until every request thread has left
  for (std::thread& t : finished_) t.join();
}

bool Scheduler::submit(Model& model, Request q, Done done, std::shared_ptr<std::atomic<bool>> cancel) {
  auto e = std::make_unique<Entry>();
  e->model = &model, e->q = std::move(q), e->done = std::move(done);
  e->cancel = cancel ? std::move(cancel) : std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard lk(mu_);
    if (stopping_) return false;
    queue_.push_back(std::move(e));
    admit_locked();
    if (int(queue_.size()) > limits_.queue) {
      queue_.pop_back();
      return false;
    }
  }
  wake_compute_.notify_one();
  return true;
}

// Starts queued requests while places are free; a cancelled one starts at once whatever the limit (it only reports).
void Scheduler::admit_locked() {
  for (auto it = queue_.begin(); it != queue_.end();) {
    const bool cancelled = (*it)->cancel->load();
    if (!cancelled && int(running_.size()) >= limits_.parallel) {
      ++it;
      continue;
    }
    Entry& e = **it;
    e.order = next_order_++;
    running_.splice(running_.end(), queue_, it++);
    try {
      e.thread = std::thread([this, &e] { run_request(e); });
    } catch (const std::system_error& err) {
      BatchOutcome out;
      out.error = std::string("could not start the request's thread: ") + err.what();
      Done done = std::move(e.done);
      running_.remove_if([&](const std::unique_ptr<Entry>& p) { return p.get() == &e; });
      done(std::move(out));
    }
  }
}

void Scheduler::run_request(Entry& e) {
  omp_set_num_threads(1);  // token choice stays on this thread: the compute thread's team is the only team
  BatchOutcome out;
  const std::shared_ptr<std::atomic<bool>> cancel = e.cancel;
  if (cancel->load()) {
    out.result.cancelled = true;
  } else {
    try {
      const int64_t positions = e.q.canvas ? int64_t(e.q.canvas->tokens.size())
                                           : int64_t(e.q.prompt.size()) + e.q.cfg.gen_length;
      Proxy p(*this, *e.model, e.order, int(std::clamp<int64_t>(positions, 1, e.model->config().ctx)));
      const StepCallback& user = e.q.on_step;
      const StepCallback cb = [&](const StepEvent& ev) { return !cancel->load() && (!user || user(ev)); };
      out.result = e.q.canvas ? generate_canvas(p, e.q.cfg, *e.q.canvas, cb) : generate(p, e.q.cfg, e.q.prompt, cb);
    } catch (const std::exception& err) {
      out.error = err.what();
    } catch (...) {
      out.error = "unknown error";
    }
  }
  Done done;
  {
    std::lock_guard lk(mu_);
    done = std::move(e.done);
    finished_.push_back(std::move(e.thread));
    running_.remove_if([&](const std::unique_ptr<Entry>& p) { return p.get() == &e; });
    admit_locked();
  }
  wake_compute_.notify_one();
  try {
    done(std::move(out));
  } catch (...) {
  }
}

void Scheduler::call(Job& j) {
  std::unique_lock lk(mu_);
  pending_.push_back(&j);
  wake_compute_.notify_one();
  wake_requests_.wait(lk, [&] { return j.done; });
  lk.unlock();
  if (j.error) std::rethrow_exception(j.error);
}

void Scheduler::serve(bool until_idle) {
  std::optional<std::chrono::steady_clock::time_point> release_at;  // when the idle hook is due
  for (;;) {
    std::vector<Job*> round;
    std::vector<std::thread> left;
    bool went_idle = false, release = false;
    {
      std::unique_lock lk(mu_);
      auto ready = [&] { return !running_.empty() && pending_.size() == running_.size(); };
      auto nothing = [&] { return running_.empty() && queue_.empty(); };
      auto idle = [&] { return nothing() && (until_idle || stopping_); };
      auto woken = [&] {
        admit_locked();
        return ready() || !finished_.empty() || idle();
      };
      if (!release_at) wake_compute_.wait(lk, woken);
      else if (!wake_compute_.wait_until(lk, *release_at, woken)) release = nothing();
      if (!nothing()) release_at.reset();  // work came: the hook waits for the next idle spell
      left.swap(finished_);
      went_idle = !left.empty() && nothing();
      if (ready()) round.swap(pending_);
      else if (left.empty() && idle()) return;
    }
    for (std::thread& t : left) t.join();
    if (went_idle && idle_hook_) release_at = std::chrono::steady_clock::now() + idle_after_;
    if (release || (release_at && idle_after_.count() == 0)) {
      release_at.reset();
      idle_hook_();
    }
    if (round.empty()) continue;
    SchedulerStats st;
    run_round(round, st);
    {
      std::lock_guard lk(mu_);
      ++stats_.rounds;
      stats_.model_calls += st.model_calls, stats_.shared_passes += st.shared_passes;
      stats_.full_passes += st.full_passes;
      stats_.sequences += st.sequences, stats_.positions += st.positions;
      for (Job* j : round) j->done = true;
    }
    wake_requests_.notify_all();
  }
}

void Scheduler::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    for (auto& e : running_) e->cancel->store(true);
    for (auto& e : queue_) e->cancel->store(true);
  }
  wake_compute_.notify_all();
}

SchedulerStats Scheduler::stats() const {
  std::lock_guard lk(mu_);
  SchedulerStats s = stats_;
  s.running = int(running_.size()), s.queued = int(queue_.size());
  return s;
}

void Scheduler::run_round(std::vector<Job*>& round, SchedulerStats& st) {
  std::sort(round.begin(), round.end(), [](const Job* a, const Job* b) { return a->order < b->order; });
  std::vector<Job*> full, cached;
  for (Job* j : round) {
    if (j->batch) full.push_back(j);
    else if (j->cache) cached.push_back(j);
    else try {
      ++st.model_calls;
      j->solo();
    } catch (...) {
      j->error = std::current_exception();
    }
  }
  run_grouped(full, false, st);
  run_grouped(cached, true, st);
}

// One pass per model over its jobs, in admission order.
void Scheduler::run_grouped(std::vector<Job*>& jobs, bool cached, SchedulerStats& st) {
  std::stable_sort(jobs.begin(), jobs.end(), [](const Job* a, const Job* b) { return a->model < b->model; });
  for (size_t lo = 0; lo < jobs.size();) {
    size_t hi = lo;
    while (hi < jobs.size() && jobs[hi]->model == jobs[lo]->model) ++hi;
    const std::span<Job* const> group(jobs.data() + lo, hi - lo);
    try {
      run_pass(*jobs[lo]->model, group, cached, st);
    } catch (...) {
      for (Job* j : group) j->error = std::current_exception();
    }
    lo = hi;
  }
}

// Every job's sequences (a Batch, or the spans continuing their caches) in one call, each job's rows moved by its
// first token's offset; each job gets its rows' logits.
void Scheduler::run_pass(Model& m, std::span<Job* const> jobs, bool cached, SchedulerStats& st) {
  Batch all;
  std::vector<KVCache*> caches;
  std::vector<std::span<const int32_t>> spans;
  std::vector<char> commit;
  std::vector<int32_t> rows;
  std::vector<size_t> first_row;
  int32_t offset = 0;
  for (const Job* j : jobs) {
    int32_t n = 0;
    if (cached) {
      caches.push_back(j->cache), spans.push_back(j->tokens), commit.push_back(j->commit);
      n = int32_t(j->tokens.size());
    } else {
      const Batch& b = *j->batch;
      for (size_t s = 0; s + 1 < b.begin.size(); ++s)
        all.add(std::span(b.tokens).subspan(size_t(b.begin[s]), size_t(b.begin[s + 1] - b.begin[s])));
      n = int32_t(b.tokens.size());
    }
    first_row.push_back(rows.size());
    for (int32_t r : j->rows) rows.push_back(r + offset);
    if (j->rows.empty())  // Model's convention: no rows means every row
      for (int32_t r = 0; r < n; ++r) rows.push_back(r + offset);
    offset += n;
  }
  first_row.push_back(rows.size());
  const size_t V = size_t(m.config().vocab);
  std::vector<float> logits(rows.size() * V);
  ++st.model_calls, ++st.full_passes;
  if (jobs.size() > 1) ++st.shared_passes;
  st.sequences += cached ? int64_t(jobs.size()) : int64_t(all.size());
  st.positions += offset;
  if (cached) m.forward_cached_batch(caches, spans, commit, logits.data(), rows);
  else m.forward(all, logits.data(), rows);
  for (size_t i = 0; i < jobs.size(); ++i)
    std::copy(logits.begin() + ptrdiff_t(first_row[i] * V), logits.begin() + ptrdiff_t(first_row[i + 1] * V),
              jobs[i]->logits);
}

BatchResult generate_batch(Model& model, std::span<const Request> requests) {
  BatchResult res;
  res.outcomes.resize(requests.size());
  const int n = int(requests.size());
  Scheduler s({.parallel = std::max(n, 1), .queue = n});
  for (size_t i = 0; i < requests.size(); ++i)
    s.submit(model, requests[i], [&res, i](BatchOutcome o) { res.outcomes[i] = std::move(o); });
  s.serve(true);
  const SchedulerStats st = s.stats();
  res.model_calls = int(st.model_calls);
  res.shared_passes = int(st.shared_passes);
  return res;
}

}  // namespace unmask
