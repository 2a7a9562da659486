#include "unmask/sampling/run.h"

#include <omp.h>

#include <algorithm>

#include "unmask/base/error.h"

namespace unmask::detail {

Run::Run(Backbone& b, const SamplerConfig& c, Canvas canvas, const StepCallback& cb)
    : cfg(c), mc(b.config()), bb(b), cb_(cb), rng_(c.seed) {
  res_.canvas = std::move(canvas.tokens);
  res_.prompt_length = canvas.prompt_length;
  res_.commit_step.assign(res_.canvas.size(), -1);
  given_.resize(res_.canvas.size());
  for (size_t i = 0; i < res_.canvas.size(); ++i) given_[i] = res_.canvas[i] != mc.mask_token || mc.mask_token < 0;
}

std::vector<int> Run::masked_in(int lo, int hi) const {
  std::vector<int> out;
  for (int p = std::max(lo, 0); p < std::min(hi, size()); ++p)
    if (masked(p)) out.push_back(p);
  return out;
}

void Run::record_forward(int positions_run, int rows, double seconds) {
  res_.stats.forward_passes += 1;
  res_.stats.positions_run += positions_run;
  res_.stats.logit_rows += rows;
  res_.stats.seconds_forward += seconds;
}

// logits_ holds (2R, V): conditional rows then unconditional ones; keeps un + (cfg + 1) (cond - un) in the first R.
void Run::guide(int R, std::span<const float> both) {
  const size_t n = size_t(R) * size_t(mc.vocab);
  const float w = float(cfg.cfg_scale + 1);
  for (size_t i = 0; i < n; ++i) logits_[i] = both[n + i] + w * (both[i] - both[n + i]);
}

void Run::logits_full(std::span<const int> positions) {
  Timer t;
  const int R = int(positions.size()), T = size();
  rows_.resize(size_t(R));
  for (int i = 0; i < R; ++i) rows_[size_t(i)] = row_of(positions[size_t(i)]);
  Batch batch;
  batch.add(res_.canvas);
  const bool cfg_pair = cfg.cfg_scale > 0;
  if (cfg_pair) {  // the unconditional sequence: every given position (the prompt) masked
    std::vector<int32_t> un(res_.canvas);
    for (int p = 0; p < T; ++p)
      if (given(p)) un[size_t(p)] = mc.mask_token;
    batch.add(un);
    for (int i = 0; i < R; ++i) rows_.push_back(rows_[size_t(i)] + T);
  }
  logits_.resize(rows_.size() * size_t(mc.vocab));
  bb.forward(batch, logits_.data(), rows_);
  if (cfg_pair) {
    std::vector<float> both(logits_);
    guide(R, both);
  }
  record_forward(int(batch.tokens.size()), int(rows_.size()), t.seconds());
}

void Run::span_rows(int begin, int end, std::span<const int> positions) {
  check(cfg.cfg_scale == 0, "classifier-free guidance cannot be combined with a cache");
  rows_.clear();
  for (int p : positions) {
    int r = row_of(p) - begin;
    check(r >= 0 && r < end - begin, "sampler: row for position {} is outside the span [{}, {})", p, begin, end);
    rows_.push_back(r);
  }
  if (rows_.empty()) rows_.push_back(end - begin - 1);  // the call must compute at least one row
  logits_.resize(rows_.size() * size_t(mc.vocab));
}

void Run::logits_cached(int begin, int end, std::span<const int> positions, bool commit) {
  Timer t;
  span_rows(begin, end, positions);
  std::span<const int32_t> span(res_.canvas.data() + begin, size_t(end - begin));
  bb.forward_cached(span, logits_.data(), rows_, commit);
  record_forward(end - begin, int(rows_.size()), t.seconds());
}

void Run::logits_draft(std::span<const int32_t> tokens, int from) {
  Timer t;
  const int n = int(tokens.size());
  rows_.resize(size_t(n));
  for (int i = 0; i < n; ++i) rows_[size_t(i)] = i;
  logits_.resize(size_t(n) * size_t(mc.vocab));
  bb.forward_draft(tokens, from, logits_.data(), rows_);
  record_forward(n, n, t.seconds());
}

void Run::logits_block_draft(int begin, int end, std::span<const int> positions) {
  Timer t;
  span_rows(begin, end, positions);
  std::span<const int32_t> span(res_.canvas.data() + begin, size_t(end - begin));
  bb.forward_draft(span, 0, logits_.data(), rows_);
  record_forward(end - begin, int(rows_.size()), t.seconds());
}

void Run::logits_window(int begin, int end, std::span<const int> positions) {
  Timer t;
  span_rows(begin, end, positions);
  std::span<const int32_t> span(res_.canvas.data() + begin, size_t(end - begin));
  bb.forward_window(begin, span, logits_.data(), rows_);
  record_forward(end - begin, int(rows_.size()), t.seconds());
}

Rng Run::stream(int position, int salt) const {
  return rng_.split((uint64_t(step_) << 34) | (uint64_t(uint32_t(position)) << 2) | uint64_t(salt & 3));
}

std::vector<Choice> Run::choose(std::span<const int> positions, const TokenRule& rule) {
  Timer t;
  const int R = int(positions.size());
  std::vector<Choice> out(static_cast<size_t>(R));
#pragma omp parallel
  {
    std::vector<double> work;
#pragma omp for schedule(static)
    for (int i = 0; i < R; ++i) {
      Rng g = stream(positions[size_t(i)], 0);
      out[size_t(i)] = choose_token(row(size_t(i)), mc.vocab, rule, g, work);
    }
  }
  res_.stats.seconds_sample += t.seconds();
  return out;
}

void Run::append(int32_t token) {
  res_.canvas.push_back(token);
  res_.commit_step.push_back(-1);
  given_.push_back(0);
}

void Run::truncate(int n) {
  res_.canvas.resize(size_t(n));
  res_.commit_step.resize(size_t(n));
  given_.resize(size_t(n));
}

bool Run::commit(std::span<const int> positions, std::span<const int32_t> tokens, std::span<const float> conf,
                 std::span<const int> remasked) {
  for (size_t i = 0; i < positions.size(); ++i) {
    res_.canvas[size_t(positions[i])] = tokens[i];
    res_.commit_step[size_t(positions[i])] = step_;
  }
  for (int p : remasked) res_.canvas[size_t(p)] = mc.mask_token, res_.commit_step[size_t(p)] = -1;
  res_.stats.generated += int(positions.size()) - int(remasked.size());
  res_.stats.steps = step_ + 1;
  if (cb_) {
    StepEvent e{step_, block_, positions, conf, remasked, res_.canvas, res_.prompt_length};
    if (!cb_(e)) stopped_ = true;
  }
  ++step_;
  return !stopped_;
}

GenerateResult Run::finish() {
  res_.cancelled = stopped_;
  res_.stats.seconds_total = total_.seconds();
  return std::move(res_);
}

TokenRule token_rule(const SamplerConfig& cfg, const ModelConfig& mc) {
  TokenRule r;
  r.temperature = cfg.temperature;
  r.top_k = cfg.top_k;
  r.top_p = cfg.top_p;
  r.min_p = cfg.min_p;
  r.banned = cfg.forbid_eos ? mc.eos_token : -1;
  r.unchosen = mc.mask_token;
  r.processed = cfg.kind != SamplerKind::kLlada;
  r.entropy = cfg.kind == SamplerKind::kDream && cfg.alg == DreamAlg::kEntropy;
  return r;
}

}  // namespace unmask::detail
