// LLaDA's sampler: semi-autoregressive blocks over the generated part, a fixed number of commits per step spread as
// get_num_transfer_tokens does, low-confidence or random remasking, Gumbel-max temperature, classifier-free
// guidance; and Fast-dLLM's parallel decoding in the same loop: the threshold and factor rules, with a prefix cache.
#include <algorithm>
#include <cmath>
#include <limits>

#include "unmask/base/error.h"
#include "unmask/sampling/run.h"
#include "unmask/sampling/transfer.h"

namespace unmask::detail {

namespace {

struct Blocks {
  int first = 0;       // canvas position where block 0 starts
  int length = 0;      // positions per block
  int count = 0;
  int steps = 0;       // steps per block (fixed schedule)
};

bool parallel_rule(const SamplerConfig& c) { return c.threshold > 0 || c.factor > 0; }

Blocks llada_blocks(const Run& r) {
  const SamplerConfig& c = r.cfg;
  Blocks b;
  b.first = r.prompt_length();
  const int gen = r.size() - b.first;
  if (gen <= 0) return b;  // nothing after the prompt: no block
  b.length = c.block_length > 0 ? std::min(c.block_length, gen) : gen;  // a block longer than the text: one block
  check(gen % b.length == 0, "--block-length {} does not divide the generation length {} (LLaDA asserts this)",
        b.length, gen);
  b.count = gen / b.length;
  const int steps = c.steps > 0 ? c.steps : gen;
  if (!parallel_rule(c))
    check(steps % b.count == 0, "--steps {} is not a multiple of the number of blocks {} (generation length {} / "
          "block length {}; LLaDA asserts this)", steps, b.count, gen, b.length);
  b.steps = std::max(steps / b.count, 1);
  return b;
}

// The rank of each proposal: its probability (low_confidence) or a uniform draw (random); EOS last when asked.
std::vector<double> confidences(Run& r, std::span<const int> pos, const std::vector<Choice>& ch) {
  std::vector<double> conf(pos.size());
  for (size_t i = 0; i < pos.size(); ++i) {
    if (r.cfg.remasking == Remasking::kRandom) {
      Rng g = r.stream(pos[i], 1);
      conf[i] = g.uniform();
    } else {
      conf[i] = ch[i].p_raw;
    }
    if (r.cfg.eos_last && ch[i].token == r.mc.eos_token) conf[i] = -std::numeric_limits<double>::infinity();
  }
  return conf;
}

// How many to commit: the fixed schedule's count, or the threshold / factor rule on the sorted confidences.
int commit_count(const SamplerConfig& c, std::span<const double> conf, int fixed) {
  if (!parallel_rule(c)) return fixed;
  std::vector<double> sorted(conf.begin(), conf.end());
  std::sort(sorted.begin(), sorted.end(), std::greater<double>());
  return c.factor > 0 ? factor_count(sorted, c.factor) : threshold_count(sorted, c.threshold);
}

// The logits of the block's masked positions: a full pass; or the prefix cache (a full pass at the block's first
// step, then only canvas[span_begin:] over the cached prefix); or the dual cache (a full pass at the block's first
// step keeps every position's K/V, then only the block, canvas[span_begin:block_hi), over the cached prefix and
// suffix).
void block_logits(Run& r, std::span<const int> pos, int block_lo, int block_hi, bool first_step) {
  if (r.cfg.cache == CacheMode::kNone) return r.logits_full(pos);
  const int span_begin = std::max(block_lo - (r.mc.shift_logits ? 1 : 0), 0);
  if (first_step) {
    r.bb.truncate(0);
    r.logits_cached(0, r.size(), pos, true);
    if (r.cfg.cache == CacheMode::kPrefix) r.bb.truncate(span_begin);
  } else if (r.cfg.cache == CacheMode::kPrefix) {
    r.logits_cached(span_begin, r.size(), pos, false);
  } else {
    r.logits_window(span_begin, block_hi, pos);
  }
}

// One step over the masked positions of block [lo, hi): returns false when the run must stop.
bool llada_step(Run& r, int lo, int hi, int fixed, bool first_step, const TokenRule& rule) {
  std::vector<int> pos = r.masked_in(lo, hi);
  if (pos.empty() || fixed == 0) return true;  // nothing to commit: the reference's pass would change nothing
  block_logits(r, pos, lo, hi, first_step);
  std::vector<Choice> ch = r.choose(pos, rule);
  std::vector<double> conf = confidences(r, pos, ch);
  const int k = commit_count(r.cfg, conf, fixed);
  std::vector<int> top = select_top(conf, k);
  if (int(top.size()) < k) {  // positions at -inf (EOS ranked last) go after the others, in position order
    for (size_t i = 0; i < pos.size() && int(top.size()) < k; ++i)
      if (std::find(top.begin(), top.end(), int(i)) == top.end()) top.push_back(int(i));
  }
  std::vector<int> at;
  std::vector<int32_t> tok;
  std::vector<float> cf;
  for (int i : top) at.push_back(pos[size_t(i)]), tok.push_back(ch[size_t(i)].token), cf.push_back(float(ch[size_t(i)].p_raw));
  return r.commit(at, tok, cf);
}

}  // namespace

void run_llada(Run& r) {
  const Blocks b = llada_blocks(r);
  const TokenRule rule = token_rule(r.cfg, r.mc);
  for (int k = 0; k < b.count && !r.stopped(); ++k) {
    r.set_block(k);
    const int lo = b.first + k * b.length, hi = lo + b.length;
    if (parallel_rule(r.cfg)) {
      for (bool first = true; !r.masked_in(lo, hi).empty(); first = false)
        if (!llada_step(r, lo, hi, -1, first, rule)) return;
      continue;
    }
    const std::vector<int> schedule = num_transfer_tokens(int(r.masked_in(lo, hi).size()), b.steps);
    bool first = true;
    for (int n : schedule) {
      if (n == 0) continue;
      if (!llada_step(r, lo, hi, n, first, rule)) return;
      first = false;
    }
  }
}

}  // namespace unmask::detail
