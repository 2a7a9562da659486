// The server's figures in Prometheus's text format (GET /metrics): requests by endpoint and status, prompt and
// generated tokens, forward passes and tokens per forward, the queue and the running batch, and histograms of latency,
// time to first token and batch size.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "unmask/sampling/batch.h"

namespace unmask::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void observe(double x);
  // The _bucket (cumulative, le="..." then +Inf), _sum and _count lines.
  std::string render(const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;
  double sum_ = 0;
  int64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void request(const std::string& endpoint, int status);  // one answered request
  // A generation that ran to its end: its tokens, passes and times.
  void generation(int prompt_tokens, int completion_tokens, int forward_passes, double seconds, double first_token_s);
  std::string render(const SchedulerStats& s) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  int64_t prompt_tokens_ = 0, completion_tokens_ = 0, request_passes_ = 0;
  Histogram latency_, first_token_;
};

}  // namespace unmask::server
