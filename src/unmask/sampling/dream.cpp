// Dream's diffusion_generate: the time grid linspace(1, eps, steps + 1); per step either `origin` (each masked
// position is revealed with probability 1 - s/t, or (α(s) − α(t)) / (1 − α(t)) under the model's schedule) or a confidence order (maskgit_plus: top probability, topk_margin:
// top-1 minus top-2, entropy: lowest entropy first) revealing int(num_mask * (1 - s/t)) positions, all at the last
// step, chosen greedily or drawn from softmax(confidence / alg_temp). Logits are shifted for models that predict
// position i from row i-1 (Run reads row i-1).
#include <algorithm>

#include "unmask/base/error.h"
#include "unmask/sampling/run.h"
#include "unmask/sampling/transfer.h"

namespace unmask::detail {

namespace {

double dream_confidence(DreamAlg alg, const Choice& c) {
  switch (alg) {
    case DreamAlg::kTopkMargin: return c.margin;
    case DreamAlg::kEntropy: return c.neg_entropy;
    default: return c.p;
  }
}

// The positions (indices into pos) to reveal at step i.
std::vector<int> dream_pick(Run& r, const std::vector<Choice>& ch, int i, std::span<const float> ts,
                            const NoiseSchedule& ns) {
  const int n = int(ch.size());
  std::vector<int> pick;
  if (r.cfg.alg == DreamAlg::kOrigin) {
    const float p_transfer = i < int(ts.size()) - 2 ? dream_reveal(ts, i, ns) : 1.0f;
    Rng g = r.stream(0, 1);
    for (int j = 0; j < n; ++j)
      if (float(g.uniform()) < p_transfer) pick.push_back(j);
    return pick;
  }
  std::vector<double> conf(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) conf[size_t(j)] = dream_confidence(r.cfg.alg, ch[size_t(j)]);
  const int k = dream_transfer_count(n, i, ts, ns);
  if (k <= 0) return pick;
  if (r.cfg.alg_temp > 0) {
    Rng g = r.stream(0, 2);
    return sample_without_replacement(conf, k, r.cfg.alg_temp, g);
  }
  return select_top(conf, k);
}

}  // namespace

void run_dream(Run& r) {
  const int steps = r.cfg.steps > 0 ? r.cfg.steps : int(r.masked_in(0, r.size()).size());
  const std::vector<float> ts = dream_timesteps(steps, float(r.cfg.eps));
  const NoiseSchedule ns = model_schedule(r.mc);
  const TokenRule rule = token_rule(r.cfg, r.mc);
  for (int i = 0; i < steps; ++i) {
    std::vector<int> pos = r.masked_in(0, r.size());
    if (pos.empty()) break;
    if (r.cfg.alg != DreamAlg::kOrigin && dream_transfer_count(int(pos.size()), i, ts, ns) == 0) continue;
    r.logits_full(pos);
    std::vector<Choice> ch = r.choose(pos, rule);
    std::vector<int> pick = dream_pick(r, ch, i, ts, ns);
    std::vector<int> at;
    std::vector<int32_t> tok;
    std::vector<float> cf;
    for (int j : pick) at.push_back(pos[size_t(j)]), tok.push_back(ch[size_t(j)].token), cf.push_back(float(ch[size_t(j)].p));
    if (!r.commit(at, tok, cf)) return;
  }
}

}  // namespace unmask::detail
