// MDLM's ancestral (ddpm) sampler over linspace(1, eps, steps + 1) with the model's schedule alpha(t) (1 - t when
// linear, cos(pi t / 2) when cosine, 1 - (1 - eps) t when log-linear): a masked
// position is revealed between t and s with probability (alpha_s - alpha_t) / (1 - alpha_t); the last step reveals
// everything left. ddpm_cache: when a step changed nothing, the next one reuses the previous logits (no forward).
// ReMDM adds remasking: a revealed token returns to [MASK] with probability sigma_t, and masked positions are
// revealed with (alpha_s - (1 - sigma_t) alpha_t) / (1 - alpha_t), which keeps the marginals of the forward process.
//   cap:     sigma_t = min(eta, sigma_max)     sigma_max = min(1, (1 - alpha_s) / alpha_t)
//   rescale: sigma_t = eta * sigma_max
//   conf:    sigma_t(l) = softmax(-psi)(l) * sigma_max, psi(l) the probability token l had when it was revealed
#include <algorithm>
#include <cmath>

#include "unmask/base/error.h"
#include "unmask/diffusion/noise.h"
#include "unmask/sampling/run.h"

namespace unmask::detail {

namespace {

struct Times {
  double alpha_t, alpha_s;
  bool last;
};

// Remasking probability of each revealed, generated position (ReMDM), and the sigma the masked positions use.
double remask_probs(const Run& r, const Times& tm, std::span<const int> revealed, std::span<const double> psi,
                    std::vector<double>& sigma) {
  sigma.assign(revealed.size(), 0.0);
  if (r.cfg.kind != SamplerKind::kRemdm || tm.last || tm.alpha_t <= 0 || revealed.empty()) return 0.0;
  const double smax = std::min(1.0, (1 - tm.alpha_s) / tm.alpha_t);
  if (r.cfg.remdm == RemdmSchedule::kConf) {
    double m = -1e300, z = 0;
    for (int p : revealed) m = std::max(m, -psi[size_t(p)]);
    for (int p : revealed) z += std::exp(-psi[size_t(p)] - m);
    for (size_t i = 0; i < revealed.size(); ++i) sigma[i] = std::exp(-psi[size_t(revealed[i])] - m) / z * smax;
    return smax / double(revealed.size());
  }
  const double s = r.cfg.remdm == RemdmSchedule::kCap ? std::min(r.cfg.eta, smax) : r.cfg.eta * smax;
  std::fill(sigma.begin(), sigma.end(), s);
  return s;
}

std::vector<int> revealed_generated(const Run& r) {
  std::vector<int> out;
  for (int p = 0; p < r.size(); ++p)
    if (!r.given(p) && !r.masked(p)) out.push_back(p);
  return out;
}

// One ancestral step: reveal masked positions, remask revealed ones. Returns whether anything changed.
bool ancestral_step(Run& r, const Times& tm, std::span<const int> pos, const std::vector<Choice>& ch,
                    std::vector<double>& psi, bool& ok) {
  std::vector<double> sigma;
  const std::vector<int> revealed = revealed_generated(r);
  const double sig = remask_probs(r, tm, revealed, psi, sigma);
  const double p_reveal = tm.last ? 1.0 : (tm.alpha_s - (1 - sig) * tm.alpha_t) / (1 - tm.alpha_t);
  std::vector<int> at, back;
  std::vector<int32_t> tok;
  std::vector<float> cf;
  for (size_t j = 0; j < pos.size(); ++j) {
    Rng g = r.stream(pos[j], 1);
    if (g.uniform() >= p_reveal) continue;
    at.push_back(pos[j]), tok.push_back(ch[j].token), cf.push_back(float(ch[j].p));
    psi[size_t(pos[j])] = ch[j].p;
  }
  for (size_t j = 0; j < revealed.size(); ++j) {
    Rng g = r.stream(revealed[j], 2);
    if (g.uniform() < sigma[j]) back.push_back(revealed[j]);
  }
  ok = r.commit(at, tok, cf, back);
  return !at.empty() || !back.empty();
}

}  // namespace

bool ddpm_step(Run& r, int i, int steps, std::span<const int> pos, const std::vector<Choice>& ch,
               std::vector<double>& psi, bool& ok) {
  const double eps = r.cfg.eps;
  const double t = 1.0 - (1.0 - eps) * i / steps, s = 1.0 - (1.0 - eps) * (i + 1) / steps;
  const NoiseSchedule ns = model_schedule(r.mc);
  return ancestral_step(r, Times{ns.alpha(t), ns.alpha(s), i == steps - 1}, pos, ch, psi, ok);
}

void run_mdlm(Run& r) {
  const int steps = r.cfg.steps > 0 ? r.cfg.steps : int(r.masked_in(0, r.size()).size());
  const TokenRule rule = token_rule(r.cfg, r.mc);
  std::vector<double> psi(size_t(r.size()), 1.0);
  bool changed = true, ok = true;
  for (int i = 0; i < steps && ok; ++i) {
    std::vector<int> pos = r.masked_in(0, r.size());
    if (pos.empty() && r.cfg.kind != SamplerKind::kRemdm) break;
    const bool reuse = !changed && r.cfg.ddpm_cache && r.cfg.kind == SamplerKind::kMdlm;
    if (!pos.empty() && !reuse) r.logits_full(pos);
    std::vector<Choice> ch = pos.empty() ? std::vector<Choice>{} : r.choose(pos, rule);
    changed = ddpm_step(r, i, steps, pos, ch, psi, ok);
  }
}

}  // namespace unmask::detail
