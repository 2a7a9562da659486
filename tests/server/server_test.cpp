// The server in-process, over real HTTP on loopback: valid JSON and UTF-8 whatever bytes a model emits, streamed text
// equal to the answer, a request that joins a running batch getting the tokens it gets alone, a client that goes
// away (streamed or not) freeing its place at once, timeouts, a full queue. The OpenAI client and the error cases
// are tested from Node (tests/server/openai), the page from Chromium (tests/server/web).
#include "unmask/server/server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>

#include "../tools/tool_models.h"

namespace unmask::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A server on a free loopback port, serving until the end of the test.
class Running {
 public:
  explicit Running(ServerOptions o) : srv_(std::move(o)), port_(srv_.bind()), thread_([this] { srv_.run(); }) {}
  ~Running() {
    srv_.stop();
    thread_.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60);
    return c;
  }
  json post(const std::string& path, const json& body, int* status = nullptr) const {
    httplib::Client c = client();
    const httplib::Result r = c.Post(path, body.dump(), "application/json");
    EXPECT_TRUE(r) << "no answer from " << path;
    if (!r) return {};
    if (status) *status = r->status;
    return json::parse(r->body);
  }
  // A figure from /metrics ("unmask_requests_running").
  double metric(const std::string& name) const {
    httplib::Client c = client();
    const httplib::Result r = c.Get("/metrics");
    std::smatch m;
    if (r && std::regex_search(r->body, m, std::regex("\n" + name + " ([0-9.e+-]+)"))) return std::stod(m[1]);
    return -1;
  }
  // Waits up to `limit` for the running batch to empty; the seconds it took, or -1.
  double seconds_until_idle(std::chrono::milliseconds limit) const {
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < limit) {
      if (metric("unmask_requests_running") == 0 && metric("unmask_queue_length") == 0)
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

 private:
  Server srv_;
  int port_;
  std::thread thread_;
};

ServerOptions options(std::vector<std::string> models, int parallel = 4, int queue = 4) {
  ServerOptions o;
  o.models = std::move(models);
  o.port = 0;
  o.batch = {.parallel = parallel, .queue = queue};
  o.threads = 1;
  return o;
}

// A random LLaDA-style model of the small preset (no tokenizer: prompts are ids), slow enough that a long request
// runs for seconds: the model for the tests of joining, leaving and timing out.
std::string slow_model() {
  const std::filesystem::path p = std::filesystem::temp_directory_path() /
                                  ("unmask_server_slow_" + std::to_string(getpid()) + ".gguf");
  if (!std::filesystem::exists(p)) {
    ModelConfig c = preset_config("small");
    const ArchInfo& a = arch_info("llada");
    c.arch = "llada", c.mask = a.mask, c.rope = a.rope, c.qkv_bias = a.qkv_bias, c.shift_logits = a.shift_logits;
    c.mask_token = c.vocab - 1, c.eos_token = 2, c.ctx = 512;
    Model::random(c, 5).save(p.string());
  }
  return p.string();
}

// The events of an SSE body, each parsed (a chunk that is not JSON fails the test).
std::vector<json> sse_events(const std::string& body, bool* done = nullptr) {
  std::vector<json> out;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    const std::string data = body.substr(at + 6, end - at - 6);
    at = end;
    if (data == "[DONE]") {
      if (done) *done = true;
      continue;
    }
    out.push_back(json::parse(data));  // throws on invalid JSON
  }
  return out;
}

// A streamed request that runs for a minute on the slow model, sending every step: tests hang up on it.
httplib::Request long_stream() {
  httplib::Request a;
  a.method = "POST", a.path = "/v1/completions";
  a.set_header("Content-Type", "application/json");
  a.body = json{{"prompt", {4, 5}}, {"max_tokens", 400}, {"stream", true},
                {"unmask", {{"steps", 1600}, {"stream_canvas", true}}}}.dump();
  return a;
}

std::string streamed(const Running& s, const std::string& path, json body) {
  body["stream"] = true;
  httplib::Client c = s.client();
  const httplib::Result r = c.Post(path, body.dump(), "application/json");
  EXPECT_TRUE(r && r->status == 200);
  return r ? r->body : "";
}

TEST(Server, JsonAndTextAreValidWhateverBytesTheModelEmits) {
  const test::ToolModels tm = test::tool_models();
  Running s(options({tm.junk_mdlm}));
  const json body = {{"prompt", "a"}, {"max_tokens", 24}, {"seed", 3}, {"temperature", 1.0},
                     {"unmask", {{"steps", 12}, {"stream_canvas", true}}}};
  int status = 0;
  const json answer = s.post("/v1/completions", {{"prompt", "a"}, {"max_tokens", 24}, {"seed", 3},
                                                  {"temperature", 1.0}, {"unmask", {{"steps", 12}}}}, &status);
  ASSERT_EQ(status, 200) << answer.dump();
  const std::string text = answer["choices"][0]["text"];
  EXPECT_EQ(valid_utf8(text), text);
  EXPECT_NE(text.find("\xEF\xBF\xBD"), std::string::npos) << "the junk model's 0xFF bytes came out as U+FFFD: " << text;
  bool done = false;
  const std::vector<json> events = sse_events(streamed(s, "/v1/completions", body), &done);
  ASSERT_TRUE(done) << "the stream ends with [DONE]";
  std::string joined;
  int nulls = 1 << 30;
  for (const json& e : events) {
    joined += e["choices"][0]["text"].get<std::string>();
    if (!e.contains("unmask") || !e["unmask"].contains("canvas")) continue;
    int n = 0;
    for (const json& cell : e["unmask"]["canvas"]) n += cell.is_null();
    EXPECT_LE(n, nulls) << "masks only ever fill in";
    nulls = n;
  }
  EXPECT_EQ(joined, text) << "the streamed pieces add up to the answer";
  EXPECT_EQ(nulls, 0) << "the last step's canvas is full";
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], answer["choices"][0]["finish_reason"]);
  EXPECT_EQ(events.back()["usage"], answer["usage"]);
}

TEST(Server, ARequestJoiningARunningBatchGetsItsTokensAloneAndAStreamThatDisconnectsLeaves) {
  Running s(options({slow_model()}, 2, 0));
  const json b = {{"prompt", {1, 2, 3}}, {"max_tokens", 16}, {"temperature", 0.9}, {"seed", 11},
                  {"unmask", {{"steps", 8}}}};
  int status = 0;
  const json alone = s.post("/v1/completions", b, &status);
  ASSERT_EQ(status, 200) << alone.dump();
  const double shared_before = s.metric("unmask_batched_passes_total");

  // A long stream (A): once its first step has arrived, B is sent, then A's client goes away.
  httplib::Client c = s.client();
  httplib::Request a = long_stream();
  json joined;
  int events = 0;
  a.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
    if (++events == 1) joined = s.post("/v1/completions", b, &status);
    return events < 3;  // then hang up
  };
  const auto t0 = std::chrono::steady_clock::now();
  c.send(a);
  ASSERT_EQ(status, 200) << joined.dump();
  EXPECT_EQ(joined["choices"][0]["text"], alone["choices"][0]["text"]) << "beside A, B gets its tokens alone";
  EXPECT_GT(s.metric("unmask_batched_passes_total"), shared_before) << "B rode in A's passes";
  const double idle = s.seconds_until_idle(5000ms);
  EXPECT_GE(idle, 0) << "A's slot was freed after its client left";
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20)
      << "A (1600 steps) did not run to its end";
  const json after = s.post("/v1/completions", b, &status);
  EXPECT_EQ(status, 200) << after.dump();
}

TEST(Server, ANonStreamedClientThatGoesAwayCancelsItsWork) {
  Running s(options({slow_model()}, 1, 0));
  httplib::Client c = s.client();
  c.set_read_timeout(0, 300000);  // gives up after 0.3 s and closes the connection
  const json long_one = {{"prompt", {4, 5}}, {"max_tokens", 400}, {"unmask", {{"steps", 1600}}}};
  const httplib::Result r = c.Post("/v1/completions", long_one.dump(), "application/json");
  EXPECT_FALSE(r) << "the client timed out";
  EXPECT_GE(s.seconds_until_idle(5000ms), 0) << "the server noticed and dropped the request";
}

TEST(Server, ARequestPastItsTimeIs504AndAFullQueueIs503) {
  Running s(options({slow_model()}, 1, 0));
  int status = 0;
  const json late = s.post("/v1/completions", {{"prompt", {4, 5}}, {"max_tokens", 400},
                                                {"unmask", {{"steps", 1600}, {"timeout", 0.3}}}}, &status);
  EXPECT_EQ(status, 504) << late.dump();
  EXPECT_EQ(late["error"]["code"], "timeout");
  ASSERT_GE(s.seconds_until_idle(5000ms), 0);

  // One request holds the only place; the next finds no room in a queue of 0.
  httplib::Client c = s.client();
  httplib::Request a = long_stream();
  json busy;
  a.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
    busy = s.post("/v1/completions", {{"prompt", {1}}, {"max_tokens", 4}}, &status);
    return false;
  };
  c.send(a);
  EXPECT_EQ(status, 503) << busy.dump();
  EXPECT_EQ(busy["error"]["code"], "server_busy");
}

}  // namespace
}  // namespace unmask::server
