// Block diffusion for block-causal models (BD3-LM, Fast-dLLM v2) and joint ones (their draft block): blocks of the model's block size, aligned to
// absolute positions, denoised one after the other. With kv_cache the full prompt blocks and every finished block
// are run once with commit, and a block's denoising steps run only the block over that cache: exact, since a
// block-causal query never sees later blocks. Within a block: MDLM's ancestral steps (nucleus sampling through
// top_p), first hitting (one uniformly chosen position per step), or the threshold rule. Stops after a block
// that produced EOS.
#include <algorithm>

#include "unmask/base/error.h"
#include "unmask/sampling/run.h"
#include "unmask/sampling/transfer.h"

namespace unmask::detail {

namespace {

// A joint model's block is a draft block over the causal cache of the blocks before it.
void block_logits(Run& r, int lo, int hi, std::span<const int> pos) {
  if (r.mc.draft_block > 0) return r.logits_block_draft(lo, hi, pos);
  if (r.cfg.kv_cache) return r.logits_cached(lo, hi, pos, false);
  r.logits_full(pos);
}

// Reveals one masked position chosen uniformly (first hitting) or those the threshold rule admits.
bool pick_step(Run& r, std::span<const int> pos, const std::vector<Choice>& ch) {
  std::vector<int> idx;
  if (r.cfg.first_hitting) {
    Rng g = r.stream(0, 1);
    idx.push_back(int(g.below(pos.size())));
  } else {
    std::vector<double> conf(ch.size());
    for (size_t j = 0; j < ch.size(); ++j) conf[j] = ch[j].p;
    std::vector<double> sorted(conf);
    std::sort(sorted.begin(), sorted.end(), std::greater<double>());
    idx = select_top(conf, threshold_count(sorted, r.cfg.threshold));
  }
  std::vector<int> at;
  std::vector<int32_t> tok;
  std::vector<float> cf;
  for (int j : idx) at.push_back(pos[size_t(j)]), tok.push_back(ch[size_t(j)].token), cf.push_back(float(ch[size_t(j)].p));
  return r.commit(at, tok, cf);
}

// Denoises block [lo, hi); false when the run must stop.
bool denoise_block(Run& r, int lo, int hi, const TokenRule& rule, std::vector<double>& psi) {
  const bool by_pick = r.cfg.first_hitting || r.cfg.threshold > 0;
  const int steps = r.cfg.steps > 0 ? r.cfg.steps : int(r.masked_in(lo, hi).size());
  bool ok = true;
  for (int i = 0; ok; ++i) {
    std::vector<int> pos = r.masked_in(lo, hi);
    if (pos.empty() || (!by_pick && i >= steps)) break;
    block_logits(r, lo, hi, pos);
    std::vector<Choice> ch = r.choose(pos, rule);
    if (by_pick) ok = pick_step(r, pos, ch);
    else ddpm_step(r, i, steps, pos, ch, psi, ok);
  }
  return ok;
}

bool has_eos(const Run& r, int lo, int hi) {
  for (int p = lo; p < hi; ++p)
    if (!r.given(p) && r.canvas()[size_t(p)] == r.mc.eos_token) return true;
  return false;
}

}  // namespace

void run_bd3(Run& r) {
  const bool joint = r.mc.draft_block > 0;  // decoding by diffusion a model trained with the joint objective
  const int B = joint ? r.mc.draft_block : r.mc.block_size, T = r.size();
  const bool cache = r.cfg.kv_cache || joint;  // a joint model's blocks need the causal cache of the ones before
  const TokenRule rule = token_rule(r.cfg, r.mc);
  std::vector<double> psi(size_t(T), 1.0);
  int lo = (r.prompt_length() / B) * B;
  r.bb.truncate(0);
  if (cache && lo > 0) r.logits_cached(0, lo, {}, true);  // the prompt's full blocks
  for (int k = 0; lo < T; ++k, lo += B) {
    const int hi = std::min(lo + B, T);
    r.set_block(k);
    if (!denoise_block(r, lo, hi, rule, psi)) return;
    if (r.cfg.stop_at_eos && r.mc.eos_token >= 0 && has_eos(r, lo, hi)) {
      r.truncate(hi);
      return;
    }
    if (cache && hi < T) r.logits_cached(lo, hi, {}, true);  // the finished block, clean, into the cache
  }
}

}  // namespace unmask::detail
