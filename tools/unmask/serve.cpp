// unmask serve: the OpenAI-compatible server (unmask/server/server.h; docs/server.md) for one or more models, by
// default the shipped twins. Prints the address once it listens; Ctrl-C (or SIGTERM) stops it, cancelling what runs.
#include <fmt/format.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "model_file.h"
#include "unmask/base/error.h"
#include "unmask/server/server.h"
#include "unmask/tokenizer/chat.h"

namespace unmask::cli {

namespace {

volatile std::sig_atomic_t g_serve_signal = 0;
extern "C" void on_serve_signal(int sig) { g_serve_signal = sig; }

struct ServeOptions {
  server::ServerOptions s;
  double max_body_mib = 1;
};

void run_serve(ServeOptions o) {
  if (o.s.models.empty())
    o.s.models = {default_model_path(kDiffusionFile, "-m"), default_model_path(kArFile, "-m")};
  o.s.max_body = size_t(o.max_body_mib * 1024 * 1024);
  // Every request runs on a thread of its own; glibc would give each busy one an arena that it keeps after the load.
  // The compute is one thread, so two arenas cost no contention worth having.
  mallopt(M_ARENA_MAX, 2);
  server::Server srv(o.s);
  const int port = srv.bind();
  std::signal(SIGINT, on_serve_signal);
  std::signal(SIGTERM, on_serve_signal);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done && g_serve_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!done) {
      fmt::print(stderr, "unmask serve: stopping (signal {})\n", int(g_serve_signal));
      srv.stop();
    }
  });
  std::string names;
  for (const server::ServedModel& m : srv.models())
    names += fmt::format("{}{} ({}, {})", names.empty() ? "" : ", ", m.id, m.model.config().arch,
                         m.diffusion() ? "diffusion" : "autoregressive");
  const std::string host = o.s.host.find(':') != std::string::npos ? "[" + o.s.host + "]" : o.s.host;
  fmt::print("unmask serve: listening on http://{}:{}/ with {}\n", host, port, names);
  std::fflush(stdout);
  srv.run();
  done = true;
  watcher.join();
}

}  // namespace

void add_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve models over an OpenAI-compatible HTTP API, with a web page that draws "
                                 "the denoising (docs/server.md)");
  auto o = std::make_shared<ServeOptions>();
  server::ServerOptions& s = o->s;
  cmd->add_option("-m,--model", s.models, "A GGUF file or Hugging Face folder to serve; repeat for several (the first "
                  "is the default); none: the shipped twins kjv-mdlm and kjv-ar");
  cmd->add_option("--host", s.host, "Address to listen on (loopback unless told otherwise)")->capture_default_str();
  cmd->add_option("--port", s.port, "Port (0: a free one, printed at start)")->capture_default_str()
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", s.api_key, "Require Authorization: Bearer KEY on every endpoint but /health and the "
                  "page itself");
  cmd->add_option("--parallel", s.batch.parallel, "Requests decoded at once in the running batch")
      ->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--queue", s.batch.queue, "Requests waiting for a place; one more is refused with 503")
      ->capture_default_str()->check(CLI::Range(0, 4096));
  cmd->add_option("--max-tokens", s.limits.max_tokens, "Largest max_tokens a request may ask for")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-prompt", s.limits.max_prompt, "Longest prompt in tokens (0: the model's context)")
      ->capture_default_str()->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--max-body", o->max_body_mib, "Largest request body in MiB (larger: 413)")->capture_default_str()
      ->check(CLI::Range(0.001, 1024.0));
  cmd->add_option("--timeout", s.limits.timeout_s, "Seconds a request may take, queue included (then 504)")
      ->capture_default_str()->check(CLI::Range(0.1, 86400.0));
  cmd->add_option("--chat-template", s.chat_template, "The chat template of models whose file has none (and of the "
                  "others: it overrides): " + chat_template_names());
  cmd->add_option("--idle-release", s.idle_release, "Seconds without a request after which the memory a load took "
                  "(scratch, GEMM plans of rare batch sizes) goes back to the system; 0: at once")
      ->capture_default_str()->check(CLI::Range(0.0, 86400.0));
  add_threads_option(cmd, s.threads);
  cmd->callback([o] { run_serve(*o); });
}

}  // namespace unmask::cli
