#include "unmask/server/session.h"

#include <chrono>
#include <ctime>

namespace unmask::server {

using nlohmann::json;

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

int64_t unix_now() { return int64_t(std::time(nullptr)); }

}  // namespace

Session::Session(Job job, std::string id)
    : job_(std::move(job)),
      id_(std::move(id)),
      created_(unix_now()),
      text_(job_.model->tok.get(), job_.model->model.config().mask_token, job_.begin, job_.stop_ids,
            job_.endpoint == Endpoint::kInfill ? std::vector<std::string>{} : job_.stop),
      remdm_(job_.req.cfg.kind == SamplerKind::kRemdm) {}

Request Session::request() {
  Request q = job_.req;
  q.on_step = [this](const StepEvent& e) { return on_step(e); };
  return q;
}

const std::string& Session::cell(int32_t id) {
  auto it = cells_.find(id);
  if (it == cells_.end()) it = cells_.emplace(id, cell_text(job_.model->tok.get(), id)).first;
  return it->second;
}

json Session::chunk(const std::string& text, const char* finish) const {
  const bool chat = job_.endpoint == Endpoint::kChat;
  json choice = {{"index", 0}, {"finish_reason", finish ? json(finish) : json()}, {"logprobs", nullptr}};
  if (chat) {
    json delta = json::object();
    if (!role_sent_) delta["role"] = "assistant";
    if (!text.empty() || !role_sent_) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return {{"id", id_}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created_},
          {"model", job_.model->id}, {"choices", json::array({choice})}};
}

// The step as a UI draws it: positions from the text's first one, null where still masked.
json Session::canvas_event(const StepEvent& e) {
  const int32_t mask = job_.model->model.config().mask_token;
  const int begin = job_.begin;
  json committed = json::array(), remasked = json::array(), canvas = json::array();
  for (size_t i = 0; i < e.committed.size(); ++i) {
    const int p = e.committed[i];
    if (p < begin) continue;
    committed.push_back({{"pos", p - begin}, {"text", cell(e.canvas[size_t(p)])},
                         {"conf", i < e.confidence.size() ? double(e.confidence[i]) : 0.0}});
  }
  for (int p : e.remasked)
    if (p >= begin) remasked.push_back(p - begin);
  for (size_t p = size_t(begin); p < e.canvas.size(); ++p)
    canvas.push_back(e.canvas[p] == mask ? json() : json(cell(e.canvas[p])));
  return {{"step", e.step}, {"block", e.block}, {"committed", committed}, {"remasked", remasked},
          {"canvas", canvas}};
}

bool Session::on_step(const StepEvent& e) {
  if (cancel->load()) return false;
  const std::string piece = remdm_ ? std::string() : text_.update(e.canvas);
  if (first_token_s_ < 0 && text_.tokens() > 0) first_token_s_ = clock_.seconds();
  streamed_ += piece;
  if (job_.stream && (job_.stream_canvas || !piece.empty())) {
    json c = chunk(piece, nullptr);
    role_sent_ = true;
    if (job_.stream_canvas) c["unmask"] = canvas_event(e);
    std::lock_guard lk(mu_);
    push(c);
  }
  return !text_.stopped();
}

json Session::usage() const {
  return {{"prompt_tokens", job_.prompt_tokens}, {"completion_tokens", completion_tokens_},
          {"total_tokens", job_.prompt_tokens + completion_tokens_}};
}

json Session::stats_json(const GenerateStats& s) const {
  return {{"sampler", sampler_kind_name(job_.req.cfg.kind)}, {"steps", s.steps},
          {"forward_passes", s.forward_passes}, {"tokens_per_forward", s.tokens_per_forward()},
          {"seconds", clock_.seconds()}, {"seconds_forward", s.seconds_forward},
          {"time_to_first_token", first_token_seconds()}, {"drafted", s.drafted}, {"accepted", s.accepted}};
}

json Session::answer(const GenerateResult& r, const std::string& text) const {
  const char* finish = text_.stopped() ? "stop" : "length";
  if (job_.endpoint == Endpoint::kInfill) {
    json holes = json::array();
    for (const auto& [lo, hi] : job_.holes)
      holes.push_back(decode_text(job_.model->tok.get(),
                                  std::span(r.canvas).subspan(size_t(lo), size_t(std::max(hi - lo, 0)))));
    const std::string content = job_.middle && !holes.empty() ? holes[0].get<std::string>() : text;
    return {{"id", id_}, {"object", "infill"}, {"created", created_}, {"model", job_.model->id},
            {"content", content}, {"text", text}, {"holes", holes}, {"usage", usage()},
            {"unmask", stats_json(r.stats)}};
  }
  json choice = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
  const bool chat = job_.endpoint == Endpoint::kChat;
  if (chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  return {{"id", id_}, {"object", chat ? "chat.completion" : "text_completion"}, {"created", created_},
          {"model", job_.model->id}, {"choices", json::array({choice})}, {"usage", usage()},
          {"unmask", stats_json(r.stats)}};
}

void Session::finish(BatchOutcome o) {
  forward_passes_ = o.result.stats.forward_passes;
  std::string rest;
  if (o.ok()) {
    rest = text_.finish(o.result.canvas);
    streamed_ += rest;
    completion_tokens_ = job_.endpoint == Endpoint::kInfill ? o.result.stats.generated : text_.tokens();
    if (first_token_s_ < 0) first_token_s_ = clock_.seconds();
  }
  std::lock_guard lk(mu_);
  if (done_) return;  // failed already (a timeout, the client gone)
  // Cancelled, and not by the client or a timeout (they fail the session first): the scheduler is stopping.
  if (cancel->load() && !text_.stopped()) {
    end_with_error(503, "server_stopping", "the server is stopping; the request was cancelled");
  } else if (!o.ok()) {
    end_with_error(400, "invalid_request_error", o.error);
  } else if (job_.stream) {
    if (!rest.empty()) push(chunk(rest, nullptr)), role_sent_ = true;
    json last = chunk("", text_.stopped() ? "stop" : "length");
    last["usage"] = usage();
    last["unmask"] = stats_json(o.result.stats);
    if (job_.endpoint == Endpoint::kInfill) last["unmask"]["text"] = streamed_;
    push(last);
    if (job_.include_usage) {
      json u = chunk("", nullptr);
      u["choices"] = json::array();
      u["usage"] = usage();
      push(u);
    }
    push_done();
  } else {
    response_ = dump(answer(o.result, streamed_));
  }
  done_ = true;
  cv_.notify_all();
}

void Session::fail(int status, const std::string& code, const std::string& message) {
  cancel->store(true);
  std::lock_guard lk(mu_);
  if (done_) return;
  end_with_error(status, code, message);
  done_ = true;
  cv_.notify_all();
}

void Session::end_with_error(int status, const std::string& code, const std::string& message) {
  const json e = error_json(status, code, "", message);
  status_ = status;
  response_ = dump(e);
  if (job_.stream) push(e), push_done();
}

void Session::push(const json& event) {
  events_.push_back("data: " + dump(event) + "\n\n");
  cv_.notify_all();
}

void Session::push_done() {
  events_.push_back("data: [DONE]\n\n");
  closed_ = true;
  cv_.notify_all();
}

Session::Wait Session::next(std::string& out, std::chrono::milliseconds wait) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, wait, [&] { return !events_.empty() || (closed_ && events_.empty()) || (done_ && !job_.stream); });
  if (!events_.empty()) {
    out = std::move(events_.front());
    events_.pop_front();
    return Wait::kEvent;
  }
  return closed_ || done_ ? Wait::kClosed : Wait::kTimeout;
}

bool Session::wait_done(std::chrono::milliseconds wait) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, wait, [&] { return done_; });
}

std::string Session::response() const {
  std::lock_guard lk(mu_);
  return response_;
}

}  // namespace unmask::server
