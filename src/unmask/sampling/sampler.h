// One interface for every decoding strategy: autoregressive decoding with the KV cache, LLaDA's semi-autoregressive
// low-confidence remasking (with classifier-free guidance), Fast-dLLM's threshold / factor parallel decoding with a
// prefix or dual cache, Dream's samplers, MDLM's ancestral sampler, ReMDM remasking and block diffusion.
//
//   SamplerConfig cfg;  cfg.kind = SamplerKind::kLlada;  cfg.gen_length = 64;  cfg.steps = 64;  cfg.block_length = 32;
//   ModelBackbone bb(model);
//   GenerateResult r = generate(bb, cfg, prompt_ids, [](const StepEvent& e) { draw(e.canvas); return true; });
//
// Randomness comes from one seeded Rng per request, split per (step, position), so the output does not depend on
// the thread count, nor on which other requests run.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "unmask/sampling/backbone.h"

namespace unmask {

enum class SamplerKind { kAr, kLlada, kDream, kMdlm, kBd3, kRemdm, kSpec };
enum class Remasking { kLowConfidence, kRandom };                    // LLaDA: which masked positions go first
enum class DreamAlg { kOrigin, kMaskgitPlus, kTopkMargin, kEntropy };  // Dream: the confidence of a position
enum class CacheMode { kNone, kPrefix, kDual };                        // Fast-dLLM's approximate caches
enum class RemdmSchedule { kCap, kRescale, kConf };                    // ReMDM: how much to remask per step

SamplerKind parse_sampler_kind(std::string_view s);  // "ar", "llada", ...; throws Error listing the known names
Remasking parse_remasking(std::string_view s);
DreamAlg parse_dream_alg(std::string_view s);
CacheMode parse_cache_mode(std::string_view s);
RemdmSchedule parse_remdm_schedule(std::string_view s);
std::string_view sampler_kind_name(SamplerKind k);

struct SamplerConfig {
  SamplerKind kind = SamplerKind::kLlada;
  int gen_length = 64;    // positions to generate after the prompt (ignored for an infill canvas)
  int steps = -1;         // denoising steps in total (bd3: per block); -1: one per masked position; 0 is an error
  int block_length = 0;   // semi-autoregressive block; 0: the whole generation (LLaDA), the model's block (bd3)
  uint64_t seed = 0;

  // Token choice (every sampler).
  double temperature = 0;     // 0: argmax
  int top_k = 0;              // 0: off
  double top_p = 1;           // 1: off
  double min_p = 0;           // 0: off (AR)
  double repeat_penalty = 1;  // 1: off (AR); llama.cpp's rule: divide positive logits, multiply negative ones
  int repeat_last_n = 64;     // how many previous tokens the penalty looks at
  bool forbid_eos = false;    // EOS never sampled (its logit is -inf)
  bool eos_last = false;      // LLaDA: a position proposing EOS has confidence -inf, so it is committed last
  bool stop_at_eos = true;    // AR and bd3: stop once EOS is produced

  // LLaDA and Fast-dLLM.
  Remasking remasking = Remasking::kLowConfidence;
  double cfg_scale = 0;     // classifier-free guidance: un + (cfg + 1) (cond - un), prompt masked in the un pass
  double threshold = 0;     // > 0: commit every masked position of the block with confidence >= threshold (>= 1)
  double factor = 0;        // > 0: Fast-dLLM's factor rule instead of a fixed threshold
  CacheMode cache = CacheMode::kNone;  // approximate caches for bidirectional models (LLaDA sampler)
  bool kv_cache = true;                // exact caches: AR's KV cache, block diffusion's cache of finished blocks
  bool ddpm_cache = true;              // MDLM: skip the forward pass when no position changed since the last one

  // Dream.
  DreamAlg alg = DreamAlg::kEntropy;
  double alg_temp = 0;  // > 0: positions drawn from softmax(confidence / alg_temp) instead of the top ones
  double eps = 1e-3;    // the time grid runs linspace(1, eps, steps + 1) (Dream, MDLM, ReMDM)

  // Block diffusion and ReMDM.
  bool first_hitting = false;  // bd3: one position per step, at the time the next mask would first be hit
  RemdmSchedule remdm = RemdmSchedule::kCap;
  double eta = 0.02;  // ReMDM: eta_cap / eta_rescale

  // Speculation: a joint model drafts for itself, or a separate drafter for a causal model.
  int draft_length = 0;  // masks drafted per pass; 0: the model's draft block (4 with a separate drafter)
  bool fused = true;     // self-speculation: verify the drafts and draft the next block in one pass
  bool adaptive_draft = false;  // draft_length is the most: a round drafts one more than the last kept
  // A separate draft model (--draft-model): a masked diffusion model with full attention, or a joint model, with the
  // target's vocabulary; it drafts, the target (any causal model) verifies. Null: the model drafts for itself.
  Backbone* drafter = nullptr;
};

// One denoising step (or one AR token), reported as it happens.
struct StepEvent {
  int step = 0;                          // 0-based, counting every forward-pass step of the request
  int block = 0;                         // semi-AR / diffusion block, 0 for whole-canvas samplers
  std::span<const int32_t> committed;    // positions that became final at this step
  std::span<const float> confidence;     // the confidence each committed position had when chosen
  std::span<const int32_t> remasked;     // positions masked again at this step (ReMDM)
  std::span<const int32_t> canvas;       // the whole sequence, mask ids where still masked
  int prompt_length = 0;
};
using StepCallback = std::function<bool(const StepEvent&)>;  // return false to stop (cancellation)

struct GenerateStats {
  int forward_passes = 0;      // model calls (a CFG pair counts as one call over two sequences)
  int64_t positions_run = 0;   // token positions that went through the transformer
  int64_t logit_rows = 0;      // rows of the output projection computed
  int steps = 0;               // sampler steps taken (a skipped forward in ddpm_cache still counts)
  int generated = 0;           // positions committed (excluding the prompt and known infill tokens)
  int drafted = 0, accepted = 0;  // spec: draft tokens verified, and kept
  int draft_passes = 0;           // spec with a separate drafter: its passes (not in forward_passes)
  double seconds_forward = 0, seconds_sample = 0, seconds_total = 0;
  double tokens_per_forward() const { return forward_passes ? double(generated) / forward_passes : 0.0; }
};

struct GenerateResult {
  std::vector<int32_t> canvas;       // prompt + generated (mask ids where a cancelled run left masks)
  std::vector<int32_t> commit_step;  // per canvas position: the step that committed it, -1 for given tokens
  int prompt_length = 0;
  bool cancelled = false;
  GenerateStats stats;
  // The generated part, cut before the first EOS (and everything after it).
  std::vector<int32_t> output(int32_t eos) const;
};

// A canvas to denoise: tokens with mask ids at the positions to fill. prompt_length: the leading positions that are
// the prompt (masked in CFG's unconditional pass; blocks start after it).
struct Canvas {
  std::vector<int32_t> tokens;
  int prompt_length = 0;
};

// Checks the configuration against the model (mask token, context, steps, ...) and throws Error saying what is wrong.
void validate(const SamplerConfig& cfg, const ModelConfig& model, int prompt_length);

// The prompt followed by cfg.gen_length masks (AR: just the prompt; the sampler appends).
GenerateResult generate(Backbone& model, const SamplerConfig& cfg, std::span<const int32_t> prompt,
                        const StepCallback& on_step = {});
// Fills the masks of an arbitrary canvas (infilling) with a diffusion sampler.
GenerateResult generate_canvas(Backbone& model, const SamplerConfig& cfg, Canvas canvas,
                               const StepCallback& on_step = {});

}  // namespace unmask
