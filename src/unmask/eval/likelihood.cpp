#include "unmask/eval/likelihood.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"

namespace unmask {

double Likelihood::ppl() const { return std::exp(per_token()); }

namespace {

// One sequence to run and the rows of it to score: row r's logits are scored against target r.
struct Job {
  std::vector<int32_t> seq;
  std::vector<int32_t> rows, targets;  // (R) rows of seq, their targets
};

// −log softmax(logits)[target] in double: logits (V).
double cross_entropy(const float* logits, int V, int32_t target) {
  float mx = logits[0];
  for (int v = 1; v < V; ++v) mx = std::max(mx, logits[v]);
  double z = 0;
  for (int v = 0; v < V; ++v) z += std::exp(double(logits[v]) - mx);
  return std::log(z) + mx - double(logits[target]);
}

// logits (R, V), targets (R) -> (R) cross-entropies.
std::vector<double> cross_entropies(const float* logits, int V, std::span<const int32_t> targets) {
  const int64_t R = int64_t(targets.size());
  std::vector<double> ce(targets.size());
#pragma omp parallel for schedule(static) if (R * V >= 65536)
  for (int64_t i = 0; i < R; ++i) ce[size_t(i)] = cross_entropy(logits + size_t(i) * size_t(V), V, targets[size_t(i)]);
  return ce;
}

// Runs the jobs in batches of at most ~16M logits and 32K positions, and returns each job's per-row cross-entropies
// (a job without rows is not run).
std::vector<std::vector<double>> run_jobs(Model& m, const std::vector<Job>& jobs, const EvalProgress& progress = {}) {
  const int V = m.config().vocab;
  const int64_t max_logits = std::max<int64_t>(int64_t(1) << 24, V), max_tokens = 32768;
  std::vector<std::vector<double>> ce(jobs.size());
  std::vector<float> logits;
  for (size_t j0 = 0; j0 < jobs.size();) {
    Batch b;
    std::vector<int32_t> rows;
    size_t j1 = j0;
    for (; j1 < jobs.size(); ++j1) {
      const Job& j = jobs[j1];
      if (j.rows.empty()) continue;
      const bool fits = int64_t(rows.size() + j.rows.size()) * V <= max_logits &&
                        int64_t(b.tokens.size() + j.seq.size()) <= max_tokens;
      if (!fits && !rows.empty()) break;
      const int32_t off = int32_t(b.tokens.size());
      b.add(j.seq);
      for (int32_t r : j.rows) rows.push_back(off + r);
    }
    logits.resize(rows.size() * size_t(V));
    if (!rows.empty()) m.forward(b, logits.data(), rows);
    std::vector<int32_t> targets;
    for (size_t j = j0; j < j1; ++j) targets.insert(targets.end(), jobs[j].targets.begin(), jobs[j].targets.end());
    const std::vector<double> all = cross_entropies(logits.data(), V, targets);
    for (size_t j = j0, r = 0; j < j1; r += jobs[j].rows.size(), ++j)
      ce[j].assign(all.begin() + int64_t(r), all.begin() + int64_t(r + jobs[j].rows.size()));
    j0 = j1;
    if (progress) progress(int64_t(j0), int64_t(jobs.size()));
  }
  return ce;
}

void check_tokens(const ModelConfig& mc, std::span<const int32_t> tokens, const char* what) {
  for (size_t i = 0; i < tokens.size(); ++i)
    check(tokens[i] >= 0 && tokens[i] < mc.vocab, "{}: token {} at position {} is outside the vocabulary of {}", what,
          tokens[i], i, mc.vocab);
}

int window_length(const ModelConfig& mc, int context, const char* what) {
  check(context >= 0 && context <= mc.ctx, "{}: --context {} exceeds the model's context of {} tokens", what, context,
        mc.ctx);
  return context > 0 ? context : mc.ctx;
}

// Mean and standard error of the mean of xs.
std::pair<double, double> mean_se(std::span<const double> xs) {
  const double n = double(xs.size());
  const double mean = std::accumulate(xs.begin(), xs.end(), 0.0) / n;
  if (xs.size() < 2) return {mean, 0.0};
  double ss = 0;
  for (double x : xs) ss += (x - mean) * (x - mean);
  return {mean, std::sqrt(ss / (n - 1) / n)};
}

// The rows and targets of the masked positions of a noisy sequence: position p is predicted by row p (row p − 1
// when the logits are shifted).
void add_masked(Job& job, std::span<const int32_t> x0, std::span<const int> masked, int32_t mask, bool shift) {
  for (int p : masked) {
    job.seq[size_t(p)] = mask;
    job.rows.push_back(shift ? p - 1 : p);
    job.targets.push_back(x0[size_t(p)]);
  }
}

void check_diffusion(const ModelConfig& mc, const char* what) {
  check(mc.mask != MaskKind::kCausal, "{}: the model is causal (autoregressive): its likelihood is exact, use `eval "
        "ppl`", what);
  check(mc.mask_token >= 0, "{}: the model has no mask token (tokenizer.ggml.mask_token_id)", what);
}

// Monte-Carlo estimates of one window's bound, sample by sample, each a list of jobs whose weighted CE sum it is.
struct Draw {
  std::vector<Job> jobs;
  std::vector<double> weights;               // per job: w(t) of its rows
  std::vector<std::vector<int>> positions;   // per job, per row: the window position the row scores
};

// Masks each maskable position of x0 in [lo, hi) with probability 1 − α(t); the jobs' rows weigh w(t).
void draw_masks(Draw& d, Job job, std::span<const int32_t> x0, int lo, int hi, double t, const NoiseSchedule& ns,
                int32_t mask, bool shift, Rng& rng) {
  const double p = 1.0 - ns.alpha(t), w = ns.weight(t);
  std::vector<int> masked;
  for (int i = lo; i < hi; ++i)
    if (rng.uniform() < p) masked.push_back(i);
  add_masked(job, x0, masked, mask, shift);
  d.weights.push_back(w);
  d.positions.push_back(masked);
  d.jobs.push_back(std::move(job));
}

// Times in (0, 1] for K samples: stratified 1 − (u + k) / K, or independent.
std::vector<double> sample_times(int K, bool antithetic, Rng& rng) {
  std::vector<double> t(static_cast<size_t>(K));
  const double u = rng.uniform();
  for (int k = 0; k < K; ++k) t[size_t(k)] = 1.0 - (antithetic ? (u + k) / K : rng.uniform());
  return t;
}

// Adds sample k of a window to d: one sequence (bidirectional) or one per block (block-causal: the clean blocks before it,
// then the noisy block, which the block-causal mask lets see exactly those).
void draw_window(Draw& d, const ModelConfig& mc, std::span<const int32_t> x0, std::span<const double> t,
                 const NoiseSchedule& ns, Rng& rng) {
  const int L = int(x0.size());
  if (mc.mask != MaskKind::kBlockCausal) {
    draw_masks(d, Job{{x0.begin(), x0.end()}, {}, {}}, x0, mc.shift_logits ? 1 : 0, L, t[0], ns, mc.mask_token,
               mc.shift_logits, rng);
    return;
  }
  for (int s = 0, b = 0; s < L; s += mc.block_size, ++b) {
    const int e = std::min(L, s + mc.block_size);
    draw_masks(d, Job{{x0.begin(), x0.begin() + e}, {}, {}}, x0.first(size_t(e)), s, e, t[size_t(b)], ns,
               mc.mask_token, false, rng);
  }
}

}  // namespace

Likelihood ar_likelihood(Model& m, std::span<const int32_t> tokens, const ArOptions& o,
                         const EvalProgress& progress) {
  const ModelConfig& mc = m.config();
  check(mc.mask == MaskKind::kCausal, "eval ppl: the model has a {} mask: a diffusion model's likelihood is bounded, "
        "use `eval elbo`", mask_kind_name(mc.mask));
  check(tokens.size() >= 2, "eval ppl: {} token(s): need at least 2 (the first is context only)", tokens.size());
  check_tokens(mc, tokens, "eval ppl");
  const int C = window_length(mc, o.context, "eval ppl"), n = int(tokens.size());
  check(C >= 2, "eval ppl: --context {}: a window needs at least 2 tokens", C);
  check(o.stride >= 0 && o.stride < C, "eval ppl: --stride {} must be in 1..{} (the window less one)", o.stride, C - 1);
  const int S = o.stride > 0 ? o.stride : C - 1;
  std::vector<Job> jobs;
  for (int begin = 0, scored = 1;; begin = std::min(begin + S, scored - 1)) {  // scored: the first not scored yet
    const int end = std::min(n, begin + C);
    Job j{{tokens.begin() + begin, tokens.begin() + end}, {}, {}};
    for (int p = scored; p < end; ++p) j.rows.push_back(p - 1 - begin), j.targets.push_back(tokens[size_t(p)]);
    scored = end;
    jobs.push_back(std::move(j));
    if (end == n) break;
  }
  const auto ce = run_jobs(m, jobs, progress);
  Likelihood r;
  r.method = "ar";
  r.windows = int(jobs.size());
  for (const auto& c : ce) r.token_nll.insert(r.token_nll.end(), c.begin(), c.end());
  r.count = int64_t(r.token_nll.size());
  r.nll = std::accumulate(r.token_nll.begin(), r.token_nll.end(), 0.0);
  return r;
}

Likelihood diffusion_elbo(Model& m, std::span<const int32_t> tokens, const ElboOptions& o,
                          const EvalProgress& progress) {
  const ModelConfig& mc = m.config();
  check_diffusion(mc, "eval elbo");
  check(o.samples >= 1, "eval elbo: --samples {}: need at least 1 Monte-Carlo sample", o.samples);
  check_tokens(mc, tokens, "eval elbo");
  const int C = window_length(mc, o.context, "eval elbo"), n = int(tokens.size()), skip = mc.shift_logits ? 1 : 0;
  check(n > skip, "eval elbo: {} token(s): nothing to score{}", n, skip ? " (a shifted model predicts from the first)" : "");
  check(C > skip, "eval elbo: --context {}: a window needs more than {} token(s)", C, skip);
  Likelihood r;
  r.method = mc.mask == MaskKind::kBlockCausal ? "bd3-elbo" : "elbo";
  r.samples = o.samples;
  Rng rng(o.seed);
  double var = 0;
  // Windows of C tokens; a shifted model's windows share one token, since a window's first is context only.
  for (int w0 = 0; w0 + skip < n; w0 += C - skip) {
    std::span<const int32_t> x0 = tokens.subspan(size_t(w0), size_t(std::min(C, n - w0)));
    const int blocks = mc.mask == MaskKind::kBlockCausal ? (int(x0.size()) + mc.block_size - 1) / mc.block_size : 1;
    std::vector<std::vector<double>> times;  // (blocks, K): stratified per block
    for (int b = 0; b < blocks; ++b) times.push_back(sample_times(o.samples, o.antithetic, rng));
    Draw d;  // every sample's jobs, sample[j] the sample job j belongs to
    std::vector<int> sample;
    for (int k = 0; k < o.samples; ++k) {
      std::vector<double> t(static_cast<size_t>(blocks));
      for (int b = 0; b < blocks; ++b) t[size_t(b)] = times[size_t(b)][size_t(k)];
      draw_window(d, mc, x0, t, o.schedule, rng);
      sample.resize(d.jobs.size(), k);
    }
    const auto ce = run_jobs(m, d.jobs);
    std::vector<double> est(size_t(o.samples), 0.0), per(x0.size(), 0.0);
    for (size_t j = 0; j < d.jobs.size(); ++j)
      for (size_t i = 0; i < ce[j].size(); ++i) {
        const double c = d.weights[j] * ce[j][i];
        est[size_t(sample[j])] += c, per[size_t(d.positions[j][i])] += c / o.samples;
      }
    const auto [mean, se] = mean_se(est);
    r.nll += mean, var += se * se, ++r.windows;
    r.token_nll.insert(r.token_nll.end(), per.begin() + skip, per.end());
    if (progress) progress(std::min<int64_t>(n, w0 + C), n);
  }
  r.count = int64_t(r.token_nll.size());
  r.se = std::sqrt(var);
  return r;
}

Likelihood conditional_elbo(Model& m, std::span<const int32_t> prompt, std::span<const int32_t> answer, int mc,
                            uint64_t seed) {
  const ModelConfig& c = m.config();
  check(c.mask == MaskKind::kBidirectional, "eval elbo --prompt: the conditional estimator is for bidirectional "
        "models, the model is {}", mask_kind_name(c.mask));
  check_diffusion(c, "eval elbo");
  check(mc >= 1, "eval elbo: --mc {}: need at least 1 Monte-Carlo sample", mc);
  check(!answer.empty(), "eval elbo: the answer is empty: nothing to score");
  check(!c.shift_logits || !prompt.empty(), "eval elbo: a shifted model needs a prompt to predict the answer from");
  const int P = int(prompt.size()), L = int(answer.size());
  check(P + L <= c.ctx, "eval elbo: prompt ({}) and answer ({}) exceed the model's context of {}", P, L, c.ctx);
  std::vector<int32_t> x0(prompt.begin(), prompt.end());
  x0.insert(x0.end(), answer.begin(), answer.end());
  check_tokens(c, x0, "eval elbo");
  Rng rng(seed);
  const double u = rng.uniform();
  std::vector<Job> jobs;
  std::vector<int> ls;
  std::vector<std::vector<int>> chosen;
  for (int k = 0; k < mc; ++k) {
    const int l = 1 + std::min(L - 1, int((u + k) / mc * L));  // stratified over 1..L
    std::vector<int> pos(static_cast<size_t>(L));
    std::iota(pos.begin(), pos.end(), P);
    for (int i = 0; i < l; ++i) std::swap(pos[size_t(i)], pos[size_t(i) + rng.below(uint64_t(L - i))]);
    pos.resize(size_t(l));
    Job j{x0, {}, {}};
    add_masked(j, x0, pos, c.mask_token, c.shift_logits);
    jobs.push_back(std::move(j)), ls.push_back(l), chosen.push_back(std::move(pos));
  }
  const auto ce = run_jobs(m, jobs);
  Likelihood r;
  r.method = "conditional-elbo";
  r.samples = mc, r.windows = 1;
  r.token_nll.assign(size_t(L), 0.0);
  std::vector<double> est(size_t(mc), 0.0);
  for (int k = 0; k < mc; ++k)
    for (size_t i = 0; i < ce[size_t(k)].size(); ++i) {
      const double v = double(L) / ls[size_t(k)] * ce[size_t(k)][i];
      est[size_t(k)] += v, r.token_nll[size_t(chosen[size_t(k)][i] - P)] += v / mc;
    }
  std::tie(r.nll, r.se) = mean_se(est);
  r.count = L;
  return r;
}

namespace {

// Every nonempty mask of the positions [lo, hi) of x0 (the sequence cut at hi), each job weighted
// 1 / (|M| · C(hi − lo, |M|)) into r.token_nll (indexed from `first`).
void enumerate_masks(Model& m, std::span<const int32_t> x0, int lo, int hi, int first, Likelihood& r) {
  const ModelConfig& mc = m.config();
  const int M = hi - lo;
  check(M >= 1 && M <= 16, "exact_elbo: {} maskable positions in a window, expected 1..16", M);
  std::vector<double> binom(size_t(M) + 1, 1.0);  // C(M, m)
  for (int k = 1; k <= M; ++k) binom[size_t(k)] = binom[size_t(k) - 1] * (M - k + 1) / k;
  std::vector<Job> jobs;
  std::vector<std::vector<int>> sets;
  for (uint32_t s = 1; s < (1u << M); ++s) {
    std::vector<int> pos;
    for (int i = 0; i < M; ++i)
      if (s >> i & 1) pos.push_back(lo + i);
    Job j{{x0.begin(), x0.begin() + hi}, {}, {}};
    add_masked(j, x0, pos, mc.mask_token, mc.shift_logits);
    jobs.push_back(std::move(j)), sets.push_back(std::move(pos));
  }
  const auto ce = run_jobs(m, jobs);
  for (size_t j = 0; j < jobs.size(); ++j) {
    const double w = 1.0 / (double(sets[j].size()) * binom[sets[j].size()]);
    for (size_t i = 0; i < sets[j].size(); ++i) r.token_nll[size_t(sets[j][i] - first)] += w * ce[j][i];
  }
}

}  // namespace

Likelihood exact_elbo(Model& m, std::span<const int32_t> tokens, int keep) {
  const ModelConfig& mc = m.config();
  check_diffusion(mc, "exact_elbo");
  check_tokens(mc, tokens, "exact_elbo");
  keep = std::max(keep, mc.shift_logits ? 1 : 0);
  const int n = int(tokens.size());
  check(keep < n, "exact_elbo: {} tokens, {} kept clean: nothing to score", n, keep);
  Likelihood r;
  r.method = "exact-elbo";
  r.token_nll.assign(size_t(n - keep), 0.0);
  const int B = mc.mask == MaskKind::kBlockCausal ? mc.block_size : n;
  for (int s = 0; s < n; s += B, ++r.windows)  // block-causal: each block given the clean blocks before it
    if (std::min(n, s + B) > std::max(s, keep)) enumerate_masks(m, tokens, std::max(s, keep), std::min(n, s + B), keep, r);
  r.count = n - keep;
  r.nll = std::accumulate(r.token_nll.begin(), r.token_nll.end(), 0.0);
  return r;
}

}  // namespace unmask
