// One request in flight: the job, the text as it becomes final (FinalText), and the channel between the request's
// thread (which runs the sampler and calls on_step / finish) and the HTTP thread (which writes the answer). The
// request's thread never blocks on the client: events wait in the channel until the HTTP thread takes them.
//
//   auto s = std::make_shared<Session>(std::move(job), "cmpl-7");
//   scheduler.submit(model, s->request(), [s](BatchOutcome o) { s->finish(std::move(o)); }, s->cancel);
//   while (auto chunk = s->next(100ms)) write(*chunk);      // streaming: SSE events, "data: [DONE]" last
//   s->response();                                          // or, not streaming: the JSON answer once done
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "unmask/base/timer.h"
#include "unmask/server/api.h"

namespace unmask::server {

class Session {
 public:
  Session(Job job, std::string id);

  // The request for the scheduler: the job's, with on_step reporting to this session.
  Request request();
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);

  // Request thread.
  bool on_step(const StepEvent& e);  // false once the text is complete (a stop) or the request was cancelled
  void finish(BatchOutcome o);       // the outcome: the last events, or the answer

  // HTTP thread.
  enum class Wait { kEvent, kTimeout, kClosed };
  // Streaming: the next SSE event into `out` (kEvent), nothing within `wait` (kTimeout), or the stream has ended.
  Wait next(std::string& out, std::chrono::milliseconds wait);
  bool wait_done(std::chrono::milliseconds wait);  // whether finish() has been called
  void fail(int status, const std::string& code, const std::string& message);  // ends the request with an error
  int status() const { return status_; }           // once done: 200 or the error's status
  std::string response() const;                    // once done: the JSON answer (or the error)

  const Job& job() const { return job_; }
  // Figures for the metrics, once done.
  int completion_tokens() const { return completion_tokens_; }
  double seconds() const { return clock_.seconds(); }
  double first_token_seconds() const { return first_token_s_ >= 0 ? first_token_s_ : clock_.seconds(); }
  int forward_passes() const { return forward_passes_; }

 private:
  nlohmann::json chunk(const std::string& text, const char* finish) const;  // an OpenAI chunk
  nlohmann::json canvas_event(const StepEvent& e);
  nlohmann::json usage() const;
  nlohmann::json stats_json(const GenerateStats& s) const;
  nlohmann::json answer(const GenerateResult& r, const std::string& text) const;
  void push(const nlohmann::json& event);  // under mu_
  void push_done();                        // under mu_
  void end_with_error(int status, const std::string& code, const std::string& message);  // under mu_
  const std::string& cell(int32_t id);

  Job job_;
  std::string id_;
  int64_t created_;
  Timer clock_;
  FinalText text_;
  std::string streamed_;  // the text sent so far
  bool remdm_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> events_;
  bool done_ = false, closed_ = false;
  bool role_sent_ = false;  // the request thread's: the chat's first delta (with the role) has been made
  int status_ = 200;
  std::string response_;
  int completion_tokens_ = 0, forward_passes_ = 0;
  double first_token_s_ = -1;
  std::unordered_map<int32_t, std::string> cells_;
};

}  // namespace unmask::server
