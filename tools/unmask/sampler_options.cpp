#include "sampler_options.h"

#include "cli_util.h"
#include "unmask/sampling/text.h"

namespace unmask::cli {

void add_sampler_options(CLI::App* cmd, SamplerOptions& o) {
  SamplerConfig& c = o.cfg;
  cmd->add_option("--sampler", o.sampler, "ar, llada, dream, mdlm, bd3, remdm or spec (default: the model's: ar for a "
                  "causal model, bd3 for a block-causal one, llada for LLaDA and LLaDA-MoE, dream for Dream; spec: "
                  "self-speculation, for a model trained with --objective joint); a flag the sampler does not read is "
                  "refused");
  cmd->add_option("-n,--n-predict", c.gen_length, "Tokens to generate")->capture_default_str();
  cmd->add_option("--steps", c.steps, "Denoising steps, at least 1 (default: one per token; bd3: per block)");
  cmd->add_option("--block-length", c.block_length, "Semi-autoregressive block length (default: whole generation)");
  cmd->add_option("--threshold", c.threshold, "Parallel decoding: commit every position with confidence >= P, "
                  "P in (0, 1]");
  cmd->add_option("--factor", c.factor, "Parallel decoding with Fast-dLLM's factor rule");
  cmd->add_option("--cache", o.cache, "LLaDA's approximate caches (Fast-dLLM): none, prefix (K/V of the prompt and of finished blocks), dual (also of the blocks after the current one)")->capture_default_str();
  cmd->add_option("--temp,--temperature", c.temperature, "Temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", c.top_k, "Top-k (0: off)");
  cmd->add_option("--top-p", c.top_p, "Top-p / nucleus (1: off)");
  cmd->add_option("--min-p", c.min_p, "Min-p (0: off)");
  cmd->add_option("--repeat-penalty", c.repeat_penalty, "Repetition penalty (1: off; AR)");
  cmd->add_option("--repeat-last-n", c.repeat_last_n, "Tokens the repetition penalty looks back");
  add_seed_option(cmd, c.seed, "Random seed");
  cmd->add_option("--remasking", o.remasking, "LLaDA: low_confidence or random")->capture_default_str();
  cmd->add_option("--cfg-scale", c.cfg_scale, "Classifier-free guidance scale (LLaDA)");
  cmd->add_flag("--ignore-eos", o.ignore_eos, "Never sample EOS");
  cmd->add_flag("--eos-last", c.eos_last, "LLaDA: commit positions proposing EOS last");
  cmd->add_option("--alg", o.alg, "Dream: origin, maskgit_plus, topk_margin, entropy")->capture_default_str();
  cmd->add_option("--alg-temp", c.alg_temp, "Dream: draw positions from softmax(confidence / T)");
  cmd->add_option("--eps", c.eps, "Final time of the grid linspace(1, eps, steps + 1)");
  cmd->add_flag("--first-hitting", c.first_hitting, "bd3: one position per step (first hitting sampler)");
  cmd->add_option("--remdm", o.remdm, "ReMDM schedule: cap, rescale, conf")->capture_default_str();
  cmd->add_option("--eta", c.eta, "ReMDM eta")->capture_default_str();
  cmd->add_flag("--no-kv-cache", o.no_kv_cache, "AR and bd3: recompute the whole sequence every step");
  cmd->add_flag("--no-ddpm-cache", o.no_ddpm_cache, "MDLM: run the model even when nothing changed");
  cmd->add_option("--draft-length", c.draft_length, "spec: masks drafted per pass (default: the model's draft block)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--no-fuse", o.no_fuse, "spec: draft and verify in separate passes (default: one pass verifies the "
                "drafts and drafts the next block)");
  cmd->add_flag("--adaptive-draft", c.adaptive_draft, "spec: --draft-length is the most; each round drafts one more "
                "than the last round kept (all kept: one more than it drafted)");
}

std::function<bool(const std::string&)> given_flags(const CLI::App* cmd) {
  return [cmd](const std::string& flag) {
    const CLI::Option* o = cmd->get_option_no_throw(flag);
    return o != nullptr && o->count() > 0;
  };
}

SamplerConfig sampler_config(const SamplerOptions& o, const ModelConfig& mc, bool infill,
                             const std::function<bool(const std::string&)>& given) {
  SamplerConfig c = o.cfg;
  c.kind = given("--sampler") ? parse_sampler_kind(o.sampler) : default_sampler(mc);
  std::vector<std::string> flags;
  for (std::string_view f : sampler_specific_options())
    if (given(std::string(f))) flags.emplace_back(f);
  check_given_options(c, flags);
  check_sampler_fits(c.kind, mc, infill, given("--draft-model"));
  c.remasking = parse_remasking(o.remasking);
  c.alg = parse_dream_alg(o.alg);
  c.cache = parse_cache_mode(o.cache);
  c.remdm = parse_remdm_schedule(o.remdm);
  c.kv_cache = !o.no_kv_cache;
  c.ddpm_cache = !o.no_ddpm_cache;
  c.fused = !o.no_fuse;
  c.forbid_eos = o.ignore_eos;
  if (o.ignore_eos) c.stop_at_eos = false;
  return c;
}

}  // namespace unmask::cli
