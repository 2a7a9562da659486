// unmask serve: the OpenAI-compatible HTTP server (cpp-httplib). The models are loaded once and shared by every
// request; one Scheduler batches all requests, continuously, on one compute thread (the only OpenMP team); each HTTP
// worker parses its request (api.h), follows it through a Session (session.h) and writes the answer or the stream.
//
//   Server s(opts);              // loads the models
//   int port = s.bind();         // the port (opts.port 0: a free one)
//   s.run();                     // serves until stop() (from another thread or a signal watcher)
#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "unmask/sampling/batch.h"
#include "unmask/server/api.h"
#include "unmask/server/metrics.h"

namespace unmask::server {

struct ServerOptions {
  std::vector<std::string> models;  // GGUF files or Hugging Face folders; the first is the default
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;               // empty: no key needed
  std::string chat_template;         // for models whose file has none (by name: chat_template_names())
  SchedulerLimits batch;             // parallel and queue
  Limits limits;
  size_t max_body = size_t(1) << 20;
  int threads = 0;                   // the compute team; 0: all cores
  double idle_release = 2;           // seconds idle after which memory goes back to the system
};

class Server {
 public:
  explicit Server(ServerOptions o);
  ~Server();
  int bind();   // throws Error when the address cannot be bound
  void run();   // serves until stop()
  void stop();  // stops listening, cancels what runs; run() returns
  const std::vector<ServedModel>& models() const { return models_; }

 private:
  void routes();
  void generate(Endpoint e, const httplib::Request& req, httplib::Response& res);
  bool authorized(const httplib::Request& req, httplib::Response& res);
  void finished(const class Session& s);
  std::string next_id(Endpoint e);

  ServerOptions o_;
  std::vector<ServedModel> models_;
  Scheduler scheduler_;
  Metrics metrics_;
  httplib::Server http_;
  std::thread compute_;
  std::atomic<int64_t> ids_{0};
};

}  // namespace unmask::server
