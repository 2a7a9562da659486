// The entry points: names of the options, validation against the model, and the dispatch to a sampler.
#include <algorithm>
#include <string>

#include "unmask/base/error.h"
#include "unmask/sampling/run.h"

namespace unmask {

namespace {

template <typename E, size_t N>
E parse_name(std::string_view s, const std::pair<std::string_view, E> (&table)[N], std::string_view what) {
  std::string known;
  for (const auto& [name, value] : table) {
    if (name == s) return value;
    known += (known.empty() ? "" : ", ") + std::string(name);
  }
  fail("unknown {} '{}'; known: {}", what, s, known);
}

constexpr std::pair<std::string_view, SamplerKind> kKinds[] = {
    {"ar", SamplerKind::kAr},     {"llada", SamplerKind::kLlada}, {"dream", SamplerKind::kDream},
    {"mdlm", SamplerKind::kMdlm}, {"bd3", SamplerKind::kBd3},     {"remdm", SamplerKind::kRemdm},
    {"spec", SamplerKind::kSpec}};

// A canvas of masks to fill (the others append to the prompt).
bool is_diffusion(SamplerKind k) { return k != SamplerKind::kAr && k != SamplerKind::kSpec; }

void validate_ranges(const SamplerConfig& c) {
  check(c.steps != 0 && c.steps >= -1, "--steps {}: at least one denoising step is needed", c.steps);
  check(c.block_length >= 0, "--block-length {}: expected a positive length (or 0 for the default)", c.block_length);
  check(c.temperature >= 0, "--temperature {}: expected >= 0", c.temperature);
  check(c.top_k >= 0, "--top-k {}: expected >= 0 (0: off)", c.top_k);
  check(c.top_p > 0 && c.top_p <= 1, "--top-p {}: expected a value in (0, 1]", c.top_p);
  check(c.min_p >= 0 && c.min_p < 1, "--min-p {}: expected a value in [0, 1)", c.min_p);
  check(c.repeat_penalty > 0, "--repeat-penalty {}: expected > 0", c.repeat_penalty);
  check(c.cfg_scale >= 0, "--cfg-scale {}: expected >= 0", c.cfg_scale);
  check(c.threshold >= 0 && c.threshold <= 1, "--threshold {}: expected a value in (0, 1]", c.threshold);
  check(c.factor >= 0, "--factor {}: expected > 0", c.factor);
  check(c.eps > 0 && c.eps < 1, "--eps {}: expected a value in (0, 1)", c.eps);
  check(c.alg_temp >= 0 && c.eta >= 0, "--alg-temp / --eta: expected >= 0");
  check(c.draft_length >= 0, "--draft-length {}: expected at least 1 drafted token", c.draft_length);
}

void validate_drafter(const SamplerConfig& c, const ModelConfig& m, const ModelConfig& d) {
  check(c.kind == SamplerKind::kSpec, "--draft-model drafts for --sampler spec, not --sampler {}",
        sampler_kind_name(c.kind));
  check(m.mask == MaskKind::kCausal, "--draft-model: the target verifies causally; this {} model is {}", m.arch,
        mask_kind_name(m.mask));
  check(d.vocab == m.vocab, "--draft-model: the drafter's vocabulary has {} tokens, the target's {}; they must share "
        "one tokenizer", d.vocab, m.vocab);
  check(d.mask_token >= 0 && d.mask_token < d.vocab, "--draft-model: the drafter ({}) has no mask token to draft "
        "with", d.arch);
  check(d.draft_block > 0 || d.mask == MaskKind::kBidirectional, "--draft-model: the drafter must be a masked "
        "diffusion model with full attention or a joint model (train --objective joint); this {} model is {}", d.arch,
        mask_kind_name(d.mask));
}

void validate_model(const SamplerConfig& c, const ModelConfig& m) {
  const auto name = sampler_kind_name(c.kind);
  if (is_diffusion(c.kind))
    check(m.mask_token >= 0 && m.mask_token < m.vocab, "--sampler {}: the model ({}, {}) has no mask token; "
          "diffusion sampling needs one (use --sampler ar for a causal model)", name, m.arch, mask_kind_name(m.mask));
  if (c.kind == SamplerKind::kAr)
    check(m.mask == MaskKind::kCausal, "--sampler ar needs a causal model; this {} model is {}", m.arch,
          mask_kind_name(m.mask));
  if (c.kind == SamplerKind::kBd3) {
    const int block = m.draft_block > 0 ? m.draft_block : m.block_size;
    check((m.mask == MaskKind::kBlockCausal && m.block_size > 0) || m.draft_block > 0,
          "--sampler bd3 needs a block-causal model or a joint one; this {} model is {}", m.arch,
          mask_kind_name(m.mask));
    check(c.block_length == 0 || c.block_length == block,
          "--block-length {}: block diffusion uses the model's block size {}", c.block_length, block);
  }
  if (c.kind == SamplerKind::kSpec && !c.drafter)
    check(m.draft_block > 0, "--sampler spec needs a model trained to decode both ways (train --objective joint), "
          "or a separate drafter (--draft-model); this {} model is {}{}", m.arch, mask_kind_name(m.mask),
          m.mask_token >= 0 ? " with a mask token" : "");
  if (c.drafter) validate_drafter(c, m, c.drafter->config());
  check(c.block_length == 0 || c.kind == SamplerKind::kLlada || c.kind == SamplerKind::kBd3,
        "--block-length applies to the llada and bd3 samplers; --sampler {} works on the whole canvas", name);
  check(c.cache == CacheMode::kNone || c.kind == SamplerKind::kLlada,
        "--cache prefix/dual: only the llada sampler (with --threshold or steps) uses an approximate cache");
  check(c.cache == CacheMode::kNone || c.cfg_scale == 0, "--cache cannot be combined with --cfg-scale");
  check(c.cache == CacheMode::kNone || m.mask != MaskKind::kCausal, "--cache: a causal model needs no approximate cache");
}

}  // namespace

SamplerKind parse_sampler_kind(std::string_view s) { return parse_name(s, kKinds, "sampler"); }

std::string_view sampler_kind_name(SamplerKind k) {
  for (const auto& [name, value] : kKinds)
    if (value == k) return name;
  return "?";
}

Remasking parse_remasking(std::string_view s) {
  static constexpr std::pair<std::string_view, Remasking> t[] = {{"low_confidence", Remasking::kLowConfidence},
                                                                 {"random", Remasking::kRandom}};
  return parse_name(s, t, "remasking");
}

DreamAlg parse_dream_alg(std::string_view s) {
  static constexpr std::pair<std::string_view, DreamAlg> t[] = {{"origin", DreamAlg::kOrigin},
                                                                {"maskgit_plus", DreamAlg::kMaskgitPlus},
                                                                {"topk_margin", DreamAlg::kTopkMargin},
                                                                {"entropy", DreamAlg::kEntropy}};
  return parse_name(s, t, "Dream algorithm");
}

CacheMode parse_cache_mode(std::string_view s) {
  static constexpr std::pair<std::string_view, CacheMode> t[] = {
      {"none", CacheMode::kNone}, {"prefix", CacheMode::kPrefix}, {"dual", CacheMode::kDual}};
  return parse_name(s, t, "cache");
}

RemdmSchedule parse_remdm_schedule(std::string_view s) {
  static constexpr std::pair<std::string_view, RemdmSchedule> t[] = {
      {"cap", RemdmSchedule::kCap}, {"rescale", RemdmSchedule::kRescale}, {"conf", RemdmSchedule::kConf}};
  return parse_name(s, t, "ReMDM schedule");
}

void validate(const SamplerConfig& c, const ModelConfig& m, int prompt_length) {
  validate_ranges(c);
  validate_model(c, m);
  check(c.gen_length >= 1, "generation length {}: expected at least 1 token to generate", c.gen_length);
  check(prompt_length + c.gen_length <= m.ctx, "the prompt ({} tokens) and the generation ({}) exceed the model's "
        "context of {} positions", prompt_length, c.gen_length, m.ctx);
  check((c.kind != SamplerKind::kAr && c.kind != SamplerKind::kSpec) || prompt_length >= 1,
        "{} decoding needs a prompt of at least one token", sampler_kind_name(c.kind));
}

std::vector<int32_t> GenerateResult::output(int32_t eos) const {
  auto first = canvas.begin() + std::min<size_t>(size_t(prompt_length), canvas.size());
  auto end = eos >= 0 ? std::find(first, canvas.end(), eos) : canvas.end();
  return std::vector<int32_t>(first, end);
}

KVCache& ModelBackbone::cache() {
  if (!has_cache_) cache_ = m_.make_cache(cache_capacity_), has_cache_ = true;
  return cache_;
}

void ModelBackbone::forward_cached(std::span<const int32_t> tokens, float* logits, std::span<const int32_t> rows,
                                   bool commit) {
  m_.forward_cached(cache(), tokens, logits, rows, commit);
}

void ModelBackbone::forward_draft(std::span<const int32_t> tokens, int from, float* logits,
                                  std::span<const int32_t> rows) {
  m_.forward_draft(cache(), tokens, from, logits, rows);
}

GenerateResult generate(Backbone& model, const SamplerConfig& cfg, std::span<const int32_t> prompt,
                        const StepCallback& on_step) {
  const ModelConfig& m = model.config();
  validate(cfg, m, int(prompt.size()));
  Canvas c{std::vector<int32_t>(prompt.begin(), prompt.end()), int(prompt.size())};
  if (is_diffusion(cfg.kind)) c.tokens.resize(prompt.size() + size_t(cfg.gen_length), m.mask_token);
  return generate_canvas(model, cfg, std::move(c), on_step);
}

GenerateResult generate_canvas(Backbone& model, const SamplerConfig& cfg, Canvas canvas,
                               const StepCallback& on_step) {
  const ModelConfig& m = model.config();
  validate_ranges(cfg);
  validate_model(cfg, m);
  check(!canvas.tokens.empty() && int(canvas.tokens.size()) <= m.ctx,
        "canvas of {} positions: expected 1 to {} (the model's context)", canvas.tokens.size(), m.ctx);
  check(canvas.prompt_length >= 0 && canvas.prompt_length <= int(canvas.tokens.size()),
        "canvas: prompt length {} outside [0, {}]", canvas.prompt_length, canvas.tokens.size());
  detail::Run r(model, cfg, std::move(canvas), on_step);
  switch (cfg.kind) {
    case SamplerKind::kAr: detail::run_ar(r); break;
    case SamplerKind::kSpec: detail::run_spec(r); break;
    case SamplerKind::kLlada: detail::run_llada(r); break;
    case SamplerKind::kDream: detail::run_dream(r); break;
    case SamplerKind::kMdlm:
    case SamplerKind::kRemdm: detail::run_mdlm(r); break;
    case SamplerKind::kBd3: detail::run_bd3(r); break;
  }
  return r.finish();
}

}  // namespace unmask
