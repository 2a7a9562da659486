// Autoregressive decoding: the prompt runs once into the KV cache, then one position per step; greedy or seeded
// sampling with temperature, top-k, top-p, min-p and llama.cpp's repetition penalty; stops at EOS, after gen_length
// tokens, or when the callback says so (stop strings are the caller's: it decodes text, the sampler does not).
// Without kv_cache every step runs the whole sequence again: the same tokens, for tests.
#include <algorithm>

#include "unmask/base/error.h"
#include "unmask/sampling/run.h"

namespace unmask::detail {

void run_ar(Run& r) {
  const TokenRule rule = token_rule(r.cfg, r.mc);
  const int P = r.size();
  const int last = P - 1;
  r.bb.truncate(0);
  if (r.cfg.kv_cache) r.logits_cached(0, P, std::span<const int>(&last, 1), true);
  else r.logits_full(std::span<const int>(&last, 1));
  std::vector<double> work;
  for (int n = 0; n < r.cfg.gen_length; ++n) {
    const int at = r.size();
    float* row = r.row(0);
    const int recent = std::min(r.cfg.repeat_last_n, at);
    apply_repeat_penalty(row, r.mc.vocab, r.canvas().subspan(size_t(at - recent)), r.cfg.repeat_penalty);
    Rng g = r.stream(at, 0);
    const Choice c = choose_token(row, r.mc.vocab, rule, g, work);
    r.append(c.token);
    const float conf = float(c.p);
    if (!r.commit(std::span<const int>(&at, 1), std::span<const int32_t>(&c.token, 1), {&conf, 1})) return;
    if (r.cfg.stop_at_eos && c.token == r.mc.eos_token) return;
    if (n + 1 == r.cfg.gen_length) return;
    if (r.cfg.kv_cache) r.logits_cached(at, at + 1, std::span<const int>(&at, 1), true);
    else r.logits_full(std::span<const int>(&at, 1));
  }
}

}  // namespace unmask::detail
