#include "unmask/server/server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fmt/format.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <filesystem>

#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/kernels/gemm.h"
#include "unmask/server/session.h"
#include "unmask_page.h"

namespace unmask::server {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Whether the client of a request has gone. httplib gives a handler no socket, so the socket is found among this
// process's descriptors by its two ends (the request's remote and local address and port), then polled for the
// peer's hang-up between steps: a client that disconnects cancels its work, streamed or not.
class ClientWatch {
 public:
  explicit ClientWatch(const httplib::Request& req) {
    DIR* d = opendir("/proc/self/fd");
    if (!d) return;
    while (dirent* e = readdir(d)) {
      const int fd = std::atoi(e->d_name);
      struct stat st {};
      if (fd <= 2 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
      if (port_of(fd, getpeername) == req.remote_port && port_of(fd, getsockname) == req.local_port &&
          addr_of(fd) == req.remote_addr) {
        fd_ = fd;
        break;
      }
    }
    closedir(d);
  }
  // The peer closed or reset the connection.
  bool gone() const {
    if (fd_ < 0) return false;
    pollfd p{fd_, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

 private:
  template <typename Get>
  static int port_of(int fd, Get get) {
    sockaddr_storage a{};
    socklen_t n = sizeof a;
    if (get(fd, reinterpret_cast<sockaddr*>(&a), &n) != 0) return -1;
    if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
    if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
    return -1;
  }
  static std::string addr_of(int fd) {
    sockaddr_storage a{};
    socklen_t n = sizeof a;
    char buf[INET6_ADDRSTRLEN] = {};
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&a), &n) != 0) return {};
    if (a.ss_family == AF_INET) inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&a)->sin_addr, buf, sizeof buf);
    else inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&a)->sin6_addr, buf, sizeof buf);
    return buf;
  }
  int fd_ = -1;
};

// The metrics label of a path: the endpoints' names, "other" for any other path (labels never hold client text).
std::string route_label(const std::string& path) {
  if (path == "/v1/completions") return "completions";
  if (path == "/v1/chat/completions") return "chat";
  if (path == "/infill") return "infill";
  if (path == "/v1/models") return "models";
  if (path == "/metrics") return "metrics";
  if (path == "/health") return "health";
  if (path == "/") return "page";
  return "other";
}

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  send_json(res, status, error_json(status, code, "", message));
}

std::vector<ServedModel> load_models(const std::vector<std::string>& paths, const std::string& chat_template) {
  check(!paths.empty(), "serve: no model to serve (give -m MODEL)");
  std::vector<ServedModel> out;
  for (const std::string& p : paths) {
    ServedModel m{std::filesystem::path(p).stem().string(), Model::load(p), model_tokenizer(p), 0, {}, {}};
    try {
      if (m.tok) m.chat = make_chat(*m.tok, chat_template);
      else m.chat_error = "it has no tokenizer";
    } catch (const Error& e) {
      m.chat_error = e.what();
    }
    if (std::filesystem::is_directory(p)) m.id = std::filesystem::path(p).filename().string();
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) m.created = int64_t(st.st_mtime);
    for (const ServedModel& o : out)
      check(o.id != m.id, "serve: two models are named '{}' ({}); serve files with different names", m.id, p);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace

Server::Server(ServerOptions o)
    : o_(std::move(o)), models_(load_models(o_.models, o_.chat_template)), scheduler_(o_.batch) {
  // Idle for a while: the models' scratch (sized by the largest batch), the primitives and packed weights of row
  // counts seldom run (a load leaves one per batch size), and the requests' freed memory go back to the system.
  scheduler_.on_idle(
      [this] {
        for (ServedModel& m : models_) m.model.release_scratch();
        release_kernel_cache();
        malloc_trim(0);
      },
      std::chrono::milliseconds(int64_t(o_.idle_release * 1000)));
  routes();
}

Server::~Server() {
  stop();
  if (compute_.joinable()) compute_.join();
}

std::string Server::next_id(Endpoint e) {
  const char* prefix = e == Endpoint::kChat ? "chatcmpl-" : e == Endpoint::kInfill ? "infill-" : "cmpl-";
  return prefix + std::to_string(++ids_);
}

bool Server::authorized(const httplib::Request& req, httplib::Response& res) {
  if (o_.api_key.empty() || req.path == "/health" || (req.path == "/" && req.method == "GET")) return true;
  if (req.get_header_value("Authorization") == "Bearer " + o_.api_key) return true;
  send_json(res, 401, error_json(401, "invalid_api_key", "",
                                 req.has_header("Authorization") ? "the API key is wrong"
                                                                 : "this server needs an API key: send the header "
                                                                   "Authorization: Bearer KEY"));
  return false;
}

void Server::routes() {
  http_.set_payload_max_length(o_.max_body);
  http_.set_keep_alive_timeout(5);
  const int workers = o_.batch.parallel + o_.batch.queue + 16;
  http_.new_task_queue = [workers] { return new httplib::ThreadPool(size_t(workers)); };
  http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) {
      metrics_.request(route_label(req.path), 401);
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Statuses httplib answers by itself (an unknown path, a body over the limit) get OpenAI's error shape.
  http_.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 413)
      send_error(res, 413, "request_too_large", fmt::format("the body is larger than this server takes ({} bytes)",
                                                             o_.max_body));
    else if (res.status == 404)
      send_error(res, 404, "not_found", fmt::format("no endpoint {} {}", req.method, req.path));
    else
      send_error(res, res.status, "http_error", fmt::format("HTTP status {}", res.status));
  });
  http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      send_error(res, 500, "internal_error", e.what());
    } catch (...) {
      send_error(res, 500, "internal_error", "unknown error");
    }
  });

  http_.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(reinterpret_cast<const char*>(kPage), kPageSize, "text/html; charset=utf-8");
  });
  http_.Get("/health", [](const httplib::Request&, httplib::Response& res) { send_json(res, 200, {{"status", "ok"}}); });
  http_.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json data = json::array();
    for (const ServedModel& m : models_) data.push_back(m.info());
    send_json(res, 200, {{"object", "list"}, {"data", data}});
  });
  http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(scheduler_.stats()), "text/plain; version=0.0.4");
  });
  auto post = [this](const char* path, Endpoint e) {
    http_.Post(path, [this, e](const httplib::Request& req, httplib::Response& res) {
      try {
        generate(e, req, res);
      } catch (const ApiError& err) {
        send_json(res, err.status, error_json(err));
        metrics_.request(std::string(endpoint_name(e)), err.status);
      } catch (const Error& err) {
        send_error(res, 400, "invalid_request_error", err.what());
        metrics_.request(std::string(endpoint_name(e)), 400);
      }
    });
  };
  post("/v1/completions", Endpoint::kCompletions);
  post("/v1/chat/completions", Endpoint::kChat);
  post("/infill", Endpoint::kInfill);
}

void Server::finished(const Session& s) {
  metrics_.request(std::string(endpoint_name(s.job().endpoint)), s.status());
  if (s.status() == 200)
    metrics_.generation(s.job().prompt_tokens, s.completion_tokens(), s.forward_passes(), s.seconds(),
                        s.first_token_seconds());
}

void Server::generate(Endpoint e, const httplib::Request& req, httplib::Response& res) {
  Job job = parse_job(e, req.body, models_, o_.limits);
  auto s = std::make_shared<Session>(std::move(job), next_id(e));
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(s->job().timeout_s));
  if (!scheduler_.submit(s->job().model->model, s->request(), [s](BatchOutcome o) { s->finish(std::move(o)); },
                         s->cancel))
    throw ApiError(503, "server_busy", "", fmt::format("the server is busy: {} requests run and {} wait, the most it "
                                                       "holds; try again later", o_.batch.parallel, o_.batch.queue));
  auto watch = std::make_shared<ClientWatch>(req);
  // Between steps: a client that went away cancels the request; one past its time fails it.
  auto check_time = [s, watch, deadline] {
    if (watch->gone()) return s->fail(499, "client_closed", "the client closed the connection"), false;
    if (std::chrono::steady_clock::now() > deadline)
      s->fail(504, "timeout", fmt::format("the request ran past its {} s", s->job().timeout_s));
    return true;
  };
  if (!s->job().stream) {
    while (!s->wait_done(50ms))
      if (!check_time()) break;
    res.status = s->status();
    res.set_content(s->response(), "application/json");
    finished(*s);
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, s, check_time](size_t, httplib::DataSink& sink) {
        std::string ev;
        for (;;) {
          const Session::Wait w = s->next(ev, 50ms);
          if (w == Session::Wait::kClosed) {
            sink.done();
            finished(*s);
            return true;
          }
          if (w == Session::Wait::kEvent && !sink.write(ev.data(), ev.size())) {
            s->fail(499, "client_closed", "the client closed the connection");
            return false;
          }
          if (w == Session::Wait::kTimeout && !check_time()) return false;
        }
      },
      [s](bool success) {
        if (!success) s->fail(499, "client_closed", "the connection ended before the stream");
      });
}

int Server::bind() {
  const int port = o_.port == 0 ? http_.bind_to_any_port(o_.host) : (http_.bind_to_port(o_.host, o_.port) ? o_.port : -1);
  check(port > 0, "serve: cannot listen on {}:{} (in use, or not an address of this machine)", o_.host, o_.port);
  return port;
}

void Server::run() {
  std::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error return, not the end of the process
  const int threads = o_.threads;
  compute_ = std::thread([this, threads] {
    set_num_threads(threads);
    scheduler_.serve();
  });
  http_.listen_after_bind();
  scheduler_.stop();
  compute_.join();
}

void Server::stop() {
  http_.stop();
  scheduler_.stop();
}

}  // namespace unmask::server
