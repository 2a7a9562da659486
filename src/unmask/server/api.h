// The OpenAI-compatible API as data: a request body read into a generation job (every field checked, with an
// OpenAI-style error naming the field when it is wrong), and the models served. No sockets here (server.cpp).
//
//   Job j = parse_job(Endpoint::kCompletions, body, models, limits);   // throws ApiError (status, code, message)
//   scheduler.submit(j.model->model, j.req, ...);
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "unmask/model/model.h"
#include "unmask/sampling/batch.h"
#include "unmask/sampling/text.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask::server {

// An error answered as {"error": {"message", "type", "param", "code"}} with an HTTP status.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string code, std::string param, const std::string& message)
      : std::runtime_error(message), status(status), code(std::move(code)), param(std::move(param)) {}
  int status;
  std::string code, param;
};
nlohmann::json error_json(int status, const std::string& code, const std::string& param, const std::string& message);
inline nlohmann::json error_json(const ApiError& e) { return error_json(e.status, e.code, e.param, e.what()); }

// A model as served: its weights (shared by every request), tokenizer and name.
struct ServedModel {
  std::string id;    // the file's stem: "kjv-mdlm"
  Model model;
  std::unique_ptr<Tokenizer> tok;  // null for a file without a vocabulary: prompts are then token ids
  int64_t created = 0;             // the file's modification time
  std::optional<Chat> chat;        // its chat template and stops; empty when it has none (then chat_error says why)
  std::string chat_error;
  bool diffusion() const { return model.config().mask != MaskKind::kCausal; }
  nlohmann::json info() const;     // the /v1/models entry
};

struct Limits {
  int max_tokens = 512;    // the largest max_tokens (and infill hole total) a request may ask for
  int max_prompt = 0;      // the longest prompt in tokens; 0: the model's context
  double timeout_s = 300;  // the longest a request may take, queue included
  int default_tokens = 64; // max_tokens when the request gives none
};

enum class Endpoint { kCompletions, kChat, kInfill };
std::string_view endpoint_name(Endpoint e);  // "completions", "chat", "infill" (metric labels)

// One request, parsed and checked: what to run and how to answer.
struct Job {
  Endpoint endpoint = Endpoint::kCompletions;
  ServedModel* model = nullptr;
  Request req;                      // the sampler configuration and the prompt or canvas
  int begin = 0;                    // the first position of the answer's text (the prompt's length; 0 for infill)
  std::vector<int32_t> stop_ids;    // ids that end the text (EOS, the chat's end of turn); none for infill
  std::vector<std::string> stop;    // stop strings
  std::vector<std::pair<int, int>> holes;  // infill: each hole's positions [begin, end)
  bool middle = false;              // infill from input_prefix/input_suffix: "content" is the hole's text
  bool stream = false, stream_canvas = false, include_usage = false;
  int prompt_tokens = 0;
  double timeout_s = 0;
};

// Reads a request body for the endpoint. Throws ApiError: 400 for malformed JSON, a wrong type or a value out of
// range (naming the field), 404 for an unknown model.
Job parse_job(Endpoint e, std::string_view body, std::span<ServedModel> models, const Limits& limits);

}  // namespace unmask::server
