#include "unmask/server/api.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <optional>

#include "unmask/base/error.h"
#include "unmask/sampling/infill.h"
#include "unmask/tokenizer/chat.h"

namespace unmask::server {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, "invalid_request_error", param, param.empty() ? message : param + ": " + message);
}

const char* type_name(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  return "an object";
}

// A field of an object, checked for its type; nullopt when absent or null.
class Fields {
 public:
  Fields(const json& obj, std::string prefix) : obj_(obj), prefix_(std::move(prefix)) {}
  std::string name(const char* key) const { return prefix_ + key; }
  const json* get(const char* key) const {
    const auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  bool has(const char* key) const { return get(key) != nullptr; }

  std::optional<int64_t> integer(const char* key, int64_t lo, int64_t hi) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    const bool integral = v->is_number_integer() ||
                          (v->is_number_float() && std::isfinite(v->get<double>()) &&
                           v->get<double>() == std::floor(v->get<double>()) && std::fabs(v->get<double>()) < 9e15);
    if (!integral) bad(name(key), fmt::format("expected an integer, got {}", type_name(*v)));
    if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      bad(name(key), fmt::format("{} is out of range; it must be between {} and {}", v->get<uint64_t>(), lo, hi));
    const int64_t x = v->is_number_float() ? int64_t(v->get<double>()) : v->get<int64_t>();
    if (x < lo || x > hi) bad(name(key), fmt::format("{} is out of range; it must be between {} and {}", x, lo, hi));
    return x;
  }
  std::optional<double> number(const char* key, double lo, double hi, bool open_lo = false) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) bad(name(key), fmt::format("expected a number, got {}", type_name(*v)));
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi || (open_lo && x == lo))
      bad(name(key), fmt::format("{} is out of range; it must be in {}{}, {}]", x, open_lo ? "(" : "[", lo, hi));
    return x;
  }
  std::optional<bool> boolean(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) bad(name(key), fmt::format("expected true or false, got {}", type_name(*v)));
    return v->get<bool>();
  }
  std::optional<std::string> string(const char* key) const {
    const json* v = get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) bad(name(key), fmt::format("expected a string, got {}", type_name(*v)));
    return v->get<std::string>();
  }

 private:
  const json& obj_;
  std::string prefix_;
};

json parse_body(std::string_view body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    bad("", fmt::format("the body is not valid JSON ({})", e.what()));
  }
  if (!j.is_object()) bad("", fmt::format("the body must be a JSON object, got {}", type_name(j)));
  return j;
}

ServedModel& pick_model(const Fields& f, std::span<ServedModel> models) {
  const std::optional<std::string> name = f.string("model");
  if (!name || name->empty()) return models.front();
  for (ServedModel& m : models)
    if (m.id == *name) return m;
  std::string known;
  for (const ServedModel& m : models) known += (known.empty() ? "" : ", ") + m.id;
  throw ApiError(404, "model_not_found", "model",
                 fmt::format("the model '{}' does not exist; this server has: {}", *name, known));
}

Tokenizer& need_tokenizer(const ServedModel& m, const char* what) {
  if (!m.tok) bad("", fmt::format("{} needs text, and the model '{}' has no tokenizer; give the prompt as token ids",
                                  what, m.id));
  return *m.tok;
}

// "prompt": a string, an array holding one string, or an array of token ids.
Canvas prompt_canvas(const json& p, const ServedModel& m) {
  if (p.is_string()) return text_canvas(need_tokenizer(m, "prompt"), p.get<std::string>());
  if (!p.is_array()) bad("prompt", fmt::format("expected a string or an array of token ids, got {}", type_name(p)));
  if (p.size() == 1 && p[0].is_string()) return text_canvas(need_tokenizer(m, "prompt"), p[0].get<std::string>());
  std::vector<int32_t> ids;
  const int vocab = m.model.config().vocab;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i].is_string()) bad("prompt", "only one prompt per request (n and batches of prompts are not supported)");
    if (!p[i].is_number_integer() || p[i].get<int64_t>() < 0 || p[i].get<int64_t>() >= vocab)
      bad("prompt", fmt::format("item {} is not a token id of this model (0 to {})", i, vocab - 1));
    ids.push_back(int32_t(p[i].get<int64_t>()));
  }
  return ids_canvas(std::move(ids));
}

std::vector<ChatMessage> chat_messages(const json& body) {
  const auto it = body.find("messages");
  if (it == body.end() || it->is_null()) bad("messages", "required");
  if (!it->is_array() || it->empty()) bad("messages", "expected a non-empty array of {role, content}");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad(where, fmt::format("expected an object, got {}", type_name(m)));
    const Fields f(m, where + ".");
    const std::optional<std::string> role = f.string("role");
    if (!role || (*role != "system" && *role != "user" && *role != "assistant"))
      bad(where + ".role", "expected \"system\", \"user\" or \"assistant\"");
    std::string content;
    const json* c = f.get("content");
    if (c && c->is_string()) {
      content = c->get<std::string>();
    } else if (c && c->is_array()) {  // content parts: only text
      for (const json& part : *c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
          bad(where + ".content", "only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
        content += part["text"].get<std::string>();
      }
    } else {
      bad(where + ".content", "expected a string");
    }
    out.push_back({*role, std::move(content)});
  }
  return out;
}

// "stop": a string or up to 4 strings.
std::vector<std::string> stop_strings(const json& body) {
  const auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return {};
  std::vector<std::string> out;
  if (it->is_string()) out.push_back(it->get<std::string>());
  else if (it->is_array() && it->size() <= 4)
    for (const json& s : *it) {
      if (!s.is_string()) bad("stop", "expected a string or an array of up to 4 strings");
      out.push_back(s.get<std::string>());
    }
  else bad("stop", "expected a string or an array of up to 4 strings");
  for (const std::string& s : out)
    if (s.empty()) bad("stop", "a stop string cannot be empty");
  return out;
}

// Fields that do not apply here: refused when set to something we would ignore silently.
void refuse_unsupported(const Fields& f) {
  if (std::optional<int64_t> n = f.integer("n", 1, 1000); n && *n != 1) bad("n", "only n = 1 is supported");
  if (const json* l = f.get("logprobs"); l && !(l->is_boolean() && !l->get<bool>()))
    bad("logprobs", "log probabilities are not supported");
  if (f.boolean("echo").value_or(false)) bad("echo", "echo is not supported");
}

// The options of the "unmask" object and the command-line names the sampler checks use.
struct ExtOption {
  const char* key;
  const char* option;
};
constexpr ExtOption kExtOptions[] = {
    {"sampler", "--sampler"},       {"steps", "--steps"},         {"block_length", "--block-length"},
    {"threshold", "--threshold"},   {"factor", "--factor"},       {"cache", "--cache"},
    {"remasking", "--remasking"},   {"alg", "--alg"},             {"alg_temp", "--alg-temp"},
    {"cfg_scale", "--cfg-scale"},   {"eps", "--eps"},             {"eta", "--eta"},
    {"remdm", "--remdm"},           {"first_hitting", "--first-hitting"}, {"eos_last", "--eos-last"},
    {"draft_length", "--draft-length"}, {"seed", "--seed"},       {"stream_canvas", ""},
    {"timeout", ""},
};
// Top-level sampling fields and their command-line names.
constexpr ExtOption kTopOptions[] = {{"temperature", "--temp"}, {"top_p", "--top-p"}, {"top_k", "--top-k"},
                                     {"min_p", "--min-p"},      {"repeat_penalty", "--repeat-penalty"},
                                     {"seed", "--seed"}};

// A library message in the API's names: "--block-length" becomes "block_length".
std::string api_names(std::string msg) {
  auto swap = [&](const ExtOption& o) {
    if (!*o.option) return;
    for (size_t at = msg.find(o.option); at != std::string::npos; at = msg.find(o.option, at + 1)) {
      const size_t end = at + std::string_view(o.option).size();
      if (end < msg.size() && (std::isalnum(uint8_t(msg[end])) || msg[end] == '-')) continue;  // a longer name
      msg.replace(at, end - at, o.key);
    }
  };
  for (const ExtOption& o : kExtOptions) swap(o);
  for (const ExtOption& o : kTopOptions) swap(o);
  return msg;
}

template <typename Parse>
auto parse_enum(const Fields& f, const char* key, Parse parse) -> std::optional<decltype(parse(""))> {
  const std::optional<std::string> s = f.string(key);
  if (!s) return std::nullopt;
  try {
    return parse(*s);
  } catch (const Error& e) {
    bad(f.name(key), e.what());
  }
}

// The sampler configuration: the model's default sampler and the authors' defaults, then what the request sets.
SamplerConfig sampler_config(Endpoint e, const json& body, const ServedModel& m, int gen_length, bool infill,
                             const Limits& limits, Job& job) {
  const ModelConfig& mc = m.model.config();
  json ext = json::object();
  if (const auto it = body.find("unmask"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) bad("unmask", fmt::format("expected an object, got {}", type_name(*it)));
    ext = *it;
  }
  for (const auto& item : ext.items()) {
    const std::string& key = item.key();
    const bool known = std::any_of(std::begin(kExtOptions), std::end(kExtOptions),
                                   [&](const ExtOption& o) { return key == o.key; });
    if (!known) {
      std::string names;
      for (const ExtOption& o : kExtOptions) names += (names.empty() ? "" : ", ") + std::string(o.key);
      bad("unmask." + key, "unknown field; the unmask object takes " + names);
    }
  }
  const Fields top(body, ""), x(ext, "unmask.");
  SamplerConfig c;
  c.kind = parse_enum(x, "sampler", parse_sampler_kind).value_or(default_sampler(mc));
  try {
    check_sampler_fits(c.kind, mc, infill);
  } catch (const Error& err) {
    bad("unmask.sampler", api_names(err.what()));
  }
  std::vector<std::string> given;
  for (const ExtOption& o : kExtOptions)
    if (*o.option && x.has(o.key)) given.emplace_back(o.option);
  for (const ExtOption& o : kTopOptions)
    if (top.has(o.key)) given.emplace_back(o.option);
  auto is_given = [&](std::string_view option) { return std::find(given.begin(), given.end(), option) != given.end(); };
  if (e == Endpoint::kChat) apply_chat_defaults(c, mc.arch, is_given);

  c.gen_length = gen_length;
  const int max_steps = 4 * std::max(limits.max_tokens, 1);
  if (auto v = x.integer("steps", 1, max_steps)) c.steps = int(*v);
  if (auto v = x.integer("block_length", 1, mc.ctx)) c.block_length = int(*v);
  if (auto v = x.number("threshold", 0, 1, true)) c.threshold = *v;
  if (auto v = x.number("factor", 0, 1e6, true)) c.factor = *v;
  if (auto v = parse_enum(x, "cache", parse_cache_mode)) c.cache = *v;
  if (auto v = parse_enum(x, "remasking", parse_remasking)) c.remasking = *v;
  if (auto v = parse_enum(x, "alg", parse_dream_alg)) c.alg = *v;
  if (auto v = x.number("alg_temp", 0, 100)) c.alg_temp = *v;
  if (auto v = x.number("cfg_scale", 0, 100)) c.cfg_scale = *v;
  if (auto v = x.number("eps", 0, 1, true)) c.eps = *v;
  if (auto v = x.number("eta", 0, 1)) c.eta = *v;
  if (auto v = parse_enum(x, "remdm", parse_remdm_schedule)) c.remdm = *v;
  if (auto v = x.boolean("first_hitting")) c.first_hitting = *v;
  if (auto v = x.boolean("eos_last")) c.eos_last = *v;
  if (auto v = x.integer("draft_length", 1, 256)) c.draft_length = int(*v);
  if (auto v = top.number("temperature", 0, 2)) c.temperature = *v;
  if (auto v = top.number("top_p", 0, 1, true)) c.top_p = *v;
  if (auto v = top.integer("top_k", 0, mc.vocab)) c.top_k = int(*v);
  if (auto v = top.number("min_p", 0, 1)) c.min_p = *v;
  if (auto v = top.number("repeat_penalty", 0, 10, true)) c.repeat_penalty = *v;
  const int64_t kSeedMax = std::numeric_limits<int64_t>::max();
  if (auto v = top.integer("seed", 0, kSeedMax)) c.seed = uint64_t(*v);
  if (auto v = x.integer("seed", 0, kSeedMax)) c.seed = uint64_t(*v);

  for (const ExtOption& o : kExtOptions)
    if (*o.option && x.has(o.key) && !sampler_reads(c.kind, o.option))
      bad(x.name(o.key), fmt::format("does not apply to sampler {} (that sampler never reads it)",
                                     sampler_kind_name(c.kind)));
  for (const ExtOption& o : kTopOptions)
    if (top.has(o.key) && !sampler_reads(c.kind, o.option))
      bad(o.key, fmt::format("does not apply to sampler {} (that sampler never reads it)", sampler_kind_name(c.kind)));
  job.stream_canvas = x.boolean("stream_canvas").value_or(false);
  job.timeout_s = x.number("timeout", 0, limits.timeout_s, true).value_or(limits.timeout_s);
  return c;
}

// The infill canvas: input_prefix + max_tokens holes + input_suffix, or a pattern with [MASK:n] holes.
Canvas infill_request_canvas(const Fields& f, const ServedModel& m, int holes, Job& job) {
  const ModelConfig& mc = m.model.config();
  Tokenizer& tok = need_tokenizer(m, "/infill");
  const std::optional<std::string> pattern = f.string("pattern"), prefix = f.string("input_prefix"),
                                   suffix = f.string("input_suffix");
  if (pattern && (prefix || suffix)) bad("pattern", "give either a pattern or input_prefix/input_suffix, not both");
  if (!pattern && !prefix && !suffix) bad("", "/infill needs input_prefix and/or input_suffix, or a pattern");
  try {
    if (pattern) return infill_text_canvas(tok, *pattern, mc.mask_token);
  } catch (const Error& e) {
    bad("pattern", e.what());
  }
  job.middle = true;
  const std::vector<InfillSpan> spans{{tok.encode(prefix.value_or(""), false, true), holes},
                                      {tok.encode(suffix.value_or(""), false, true), 0}};
  return infill_canvas(spans, mc.mask_token);
}

// The holes of an infill canvas, each a run of masked positions [begin, end).
std::vector<std::pair<int, int>> hole_runs(const Canvas& c, int32_t mask) {
  std::vector<std::pair<int, int>> out;
  for (int p = 0; p < int(c.tokens.size()); ++p) {
    if (c.tokens[size_t(p)] != mask) continue;
    if (out.empty() || out.back().second != p) out.emplace_back(p, p + 1);
    else out.back().second = p + 1;
  }
  return out;
}

}  // namespace

json error_json(int status, const std::string& code, const std::string& param, const std::string& message) {
  const char* type = status == 401   ? "authentication_error"
                     : status == 404 ? "not_found_error"
                     : status >= 500 ? "server_error"
                                     : "invalid_request_error";
  return {{"error", {{"message", message}, {"type", type}, {"param", param.empty() ? json() : json(param)},
                     {"code", code}}}};
}

json ServedModel::info() const {
  const ModelConfig& mc = model.config();
  return {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "unmask"},
          {"unmask", {{"arch", mc.arch}, {"kind", diffusion() ? "diffusion" : "autoregressive"},
                      {"sampler", sampler_kind_name(default_sampler(mc))}, {"context", mc.ctx}, {"vocab", mc.vocab},
                      {"tokenizer", tok != nullptr}}}};
}

std::string_view endpoint_name(Endpoint e) {
  return e == Endpoint::kChat ? "chat" : e == Endpoint::kInfill ? "infill" : "completions";
}

Job parse_job(Endpoint e, std::string_view text, std::span<ServedModel> models, const Limits& limits) {
  const json body = parse_body(text);
  const Fields f(body, "");
  Job job;
  job.endpoint = e;
  ServedModel& m = pick_model(f, models);
  job.model = &m;
  const ModelConfig& mc = m.model.config();
  refuse_unsupported(f);
  job.stream = f.boolean("stream").value_or(false);
  if (const json* so = f.get("stream_options")) {
    if (!so->is_object()) bad("stream_options", fmt::format("expected an object, got {}", type_name(*so)));
    job.include_usage = Fields(*so, "stream_options.").boolean("include_usage").value_or(false);
  }
  const int max_tokens = int(f.integer("max_tokens", 1, limits.max_tokens)
                                 .value_or(f.integer("n_predict", 1, limits.max_tokens).value_or(limits.default_tokens)));
  job.stop = stop_strings(body);

  Canvas canvas;
  const bool infill = e == Endpoint::kInfill;
  if (e == Endpoint::kCompletions) {
    if (!body.contains("prompt") || body["prompt"].is_null()) bad("prompt", "required");
    canvas = prompt_canvas(body["prompt"], m);
  } else if (e == Endpoint::kChat) {
    const std::vector<ChatMessage> messages = chat_messages(body);
    Tokenizer& tok = need_tokenizer(m, "/v1/chat/completions");
    if (!m.chat) bad("messages", fmt::format("the model '{}' has no chat template ({}); use /v1/completions, or "
                                             "serve it with --chat-template NAME", m.id, m.chat_error));
    canvas = chat_canvas(tok, *m.chat, messages);
    job.stop_ids = m.chat->stop_ids;
  } else {
    canvas = infill_request_canvas(f, m, max_tokens, job);
  }
  if (!infill && job.stop_ids.empty() && mc.eos_token >= 0) job.stop_ids.push_back(mc.eos_token);

  const int prompt = infill ? int(canvas.tokens.size()) - int(std::count(canvas.tokens.begin(), canvas.tokens.end(),
                                                                        mc.mask_token))
                            : int(canvas.tokens.size());
  const int max_prompt = limits.max_prompt > 0 ? std::min(limits.max_prompt, mc.ctx) : mc.ctx;
  if (prompt > max_prompt)
    bad(infill ? "input_prefix" : e == Endpoint::kChat ? "messages" : "prompt",
        fmt::format("the prompt is {} tokens; this server takes at most {}", prompt, max_prompt));
  const int total = infill ? int(canvas.tokens.size()) : prompt + max_tokens;
  if (total > mc.ctx)
    bad("max_tokens", fmt::format("the prompt ({} tokens) and max_tokens ({}) need {} positions; the model's context "
                                  "is {}", prompt, infill ? total - prompt : max_tokens, total, mc.ctx));
  if (infill) {
    job.holes = hole_runs(canvas, mc.mask_token);
    if (total - prompt > limits.max_tokens)
      bad("pattern", fmt::format("the holes hold {} positions; this server fills at most {}", total - prompt,
                                 limits.max_tokens));
  }
  job.prompt_tokens = prompt;
  job.begin = infill ? 0 : canvas.prompt_length;
  job.req.cfg = sampler_config(e, body, m, max_tokens, infill, limits, job);
  try {
    validate(job.req.cfg, mc, canvas.prompt_length);
  } catch (const Error& err) {
    bad("unmask", api_names(err.what()));
  }
  if (infill) job.req.canvas = std::move(canvas);
  else job.req.prompt = std::move(canvas.tokens);
  return job;
}

}  // namespace unmask::server
