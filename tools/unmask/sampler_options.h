// The sampler flags every command that generates shares (generate, eval gen, eval task, compare): --sampler, -n,
// --steps, --block-length, --threshold, --temp, ..., and the SamplerConfig they make for a model, each flag checked
// against the sampler that reads it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "unmask/model/config.h"
#include "unmask/sampling/sampler.h"

namespace unmask::cli {

struct SamplerOptions {
  std::string sampler, remasking = "low_confidence", alg = "entropy", cache = "none", remdm = "cap";
  SamplerConfig cfg;
  bool no_kv_cache = false, no_ddpm_cache = false, ignore_eos = false, no_fuse = false;
};

// Adds the flags to cmd (not --stop, --chat or the prompt flags, which are generate's).
void add_sampler_options(CLI::App* cmd, SamplerOptions& o);

// Whether the user passed a flag ("--temp") on cmd; false for a flag cmd does not have.
std::function<bool(const std::string&)> given_flags(const CLI::App* cmd);

// The configuration for the model: the sampler named, or the model's default; a flag the sampler does not read, or a
// sampler that does not fit the model (infill: the canvas has holes), throws naming it.
SamplerConfig sampler_config(const SamplerOptions& o, const ModelConfig& mc, bool infill,
                             const std::function<bool(const std::string&)>& given);

}  // namespace unmask::cli
