// Several generation requests as one batch: each request's sampler runs on its own thread against a proxy backbone,
// and the proxies hand their full forward passes to one batcher, which waits until every request still running has
// asked for logits, runs the model once over all their sequences, and gives each request its rows.
//
//   std::vector<Request> reqs(2);
//   reqs[0].cfg.kind = SamplerKind::kLlada, reqs[0].prompt = {1, 2, 3};
//   reqs[1].cfg.kind = SamplerKind::kDream, reqs[1].cfg.seed = 7, reqs[1].prompt = {4, 5};
//   BatchResult b = generate_batch(model, reqs);   // b.outcomes[i].result: what generate() gives request i alone
//
// A request's tokens do not depend on its companions: its random streams depend only on its seed, step and position,
// and each sequence of a Batch attends only within itself. (The logits of a sequence can differ from a solo pass by
// float rounding of the larger GEMMs; a choice decided by a margin of that size may then differ.)
// Cached passes (AR's KV cache, bd3's block cache, --cache prefix/dual) are supported but not shared: such a request
// keeps its own cache, and the batcher runs its cached call alone, in the same round as the shared full pass.
// Only the batcher's thread (the caller's) calls the model, so OpenMP regions inside it never overlap; the request
// threads use the caller's OpenMP thread count for their token choices. Step callbacks run on the request's thread.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "unmask/model/model.h"
#include "unmask/sampling/sampler.h"

namespace unmask {

struct Request {
  SamplerConfig cfg;              // cfg.seed is the request's seed
  std::vector<int32_t> prompt;    // generate(): the prompt followed by cfg.gen_length masks
  std::optional<Canvas> canvas;   // set: generate_canvas() over this canvas instead (prompt is ignored)
  StepCallback on_step;           // optional; called on the request's own thread
};

struct BatchOutcome {
  GenerateResult result;  // empty when the request failed
  std::string error;      // the request's Error message; empty when it succeeded
  bool ok() const { return error.empty(); }
};

struct BatchResult {
  std::vector<BatchOutcome> outcomes;  // one per request, in order
  int model_calls = 0;                 // Model calls made: shared full passes plus each cached call
  int shared_passes = 0;               // full passes that served more than one request
};

// Runs the requests together. A request that fails (a bad configuration, a model error) records its error and leaves
// the batch; the others go on. Throws only when no thread can be started.
BatchResult generate_batch(Model& model, std::span<const Request> requests);

}  // namespace unmask
