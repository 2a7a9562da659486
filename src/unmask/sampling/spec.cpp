// Self-speculative decoding with a joint model (Nemotron-Labs-Diffusion's recipe; diffusion/objective.h): the same
// weights draft a block by diffusion and verify it causally, so the output is AR's. One pass runs
//
//   [t, d_1 .. d_j, M × k]     t: the last committed token (not yet cached); d: drafts; M: masks
//
// over the KV cache of everything before t: t and the drafts are causal rows (AR's next-token distributions, and K/V
// that are AR's), the masks a draft block that sees the cache, t, the drafts and each other. The drafts are verified
// in order against AR's rows: greedy, a draft is kept while it is AR's argmax; sampled, kept with probability
// min(1, p/q), and the first one refused is replaced by a draw from norm(max(0, p − q)) (speculative sampling: the
// output has exactly AR's distribution). After the kept drafts comes AR's own next token. The cache keeps t and the
// kept drafts. When every draft was kept, the mask rows saw exactly the committed tokens, so their predictions are
// the next pass's drafts (the first mask's position is AR's token just taken); otherwise the next pass drafts anew.
// Fused (the default), verifying and drafting share every pass; unfused, a pass either drafts ([t, M × k]) or
// verifies ([t, d]). With a separate drafter (DFlash's arrangement: a small diffusion model drafts for a large causal
// one), each round drafts k tokens in one pass of the drafter and verifies them in one causal pass [t, d] of the
// target, under the same rule: the output is still the target's.
#include <algorithm>

#include "unmask/base/error.h"
#include "unmask/sampling/run.h"

namespace unmask::detail {

namespace {

// Drafts for the positions after the pending token, with the distributions they were drawn from (sampling only).
struct Drafts {
  std::vector<int32_t> tokens;
  std::vector<std::vector<double>> q;
};

// The committed tokens of one pass: the kept drafts, then AR's token (a replacement or the bonus).
struct Verdict {
  std::vector<int32_t> tokens;
  std::vector<float> conf;
  int kept = 0;
};

Verdict verify(Run& r, int m, const Drafts& d, const TokenRule& rule) {
  const int V = r.mc.vocab, j = int(d.tokens.size());
  const bool greedy = rule.temperature <= 0;
  Verdict v;
  std::vector<double> work, p;
  for (int i = 0;; ++i) {
    const int at = m + 1 + i;
    Rng g = r.stream(at, 0);
    if (i == j || greedy) {  // AR's own choice: the bonus after every draft, or the check of a greedy draft
      const Choice c = choose_token(r.row(size_t(i)), V, rule, g, work);
      v.tokens.push_back(c.token), v.conf.push_back(float(c.p));
      if (i == j || c.token != d.tokens[size_t(i)]) return v;
      ++v.kept;
      continue;
    }
    token_probs(r.row(size_t(i)), V, rule, p);
    const std::vector<double>& q = d.q[size_t(i)];
    const int32_t x = d.tokens[size_t(i)];
    Rng u = r.stream(at, 1);
    if (u.uniform() * q[size_t(x)] < p[size_t(x)]) {  // kept with probability min(1, p(x) / q(x))
      v.tokens.push_back(x), v.conf.push_back(float(p[size_t(x)]));
      ++v.kept;
      continue;
    }
    double total = 0;
    for (size_t t = 0; t < p.size(); ++t) total += p[t] = std::max(0.0, p[t] - q[t]);
    for (double& x2 : p) x2 /= total;
    const int32_t y = int32_t(draw_index(p, g));
    v.tokens.push_back(y), v.conf.push_back(float(p[size_t(y)]));
    return v;
  }
}

// Drafts for the positions from `at` on, from n logits rows of vocab V.
Drafts draft(Run& r, const float* rows, int V, int n, int at, const TokenRule& rule) {
  Drafts d;
  std::vector<double> work;
  for (int i = 0; i < n; ++i) {
    const float* row = rows + size_t(i) * size_t(V);
    Rng g = r.stream(at + i, 3);
    if (rule.temperature <= 0) {
      d.tokens.push_back(choose_token(row, V, rule, g, work).token);
      continue;
    }
    d.q.emplace_back();
    token_probs(row, V, rule, d.q.back());
    d.tokens.push_back(int32_t(draw_index(d.q.back(), g)));
  }
  return d;
}

// A separate drafter's n drafts after the committed sequence, from one pass over it and n masks: a joint drafter
// continues its cache of the committed tokens (it keeps them: their K/V never change), a full-attention one runs the
// whole sequence.
Drafts draft_apart(Run& r, Backbone& dm, std::vector<float>& logits, int n, const TokenRule& rule) {
  if (n == 0) return {};
  const ModelConfig& dc = dm.config();
  const int N = r.size(), V = dc.vocab;
  std::span<const int32_t> seq = r.canvas();
  logits.resize(size_t(n) * size_t(V));
  std::vector<int32_t> pass, rows;
  if (dc.draft_block > 0) {
    const int c = std::min(dm.cached(), N);
    dm.truncate(c);
    pass.assign(seq.begin() + c, seq.end());
    pass.insert(pass.end(), size_t(n), dc.mask_token);
    for (int i = 0; i < n; ++i) rows.push_back(N - c + i);
    dm.forward_draft(pass, N - c, logits.data(), rows);
    dm.advance(N - c);
  } else {
    Batch b;
    pass.assign(seq.begin(), seq.end());
    pass.insert(pass.end(), size_t(n), dc.mask_token);
    b.add(pass);
    for (int i = 0; i < n; ++i) rows.push_back(dc.shift_logits ? N + i - 1 : N + i);
    dm.forward(b, logits.data(), rows);
  }
  ++r.stats().draft_passes;
  return draft(r, logits.data(), V, n, N, rule);
}

}  // namespace

void run_spec(Run& r) {
  const ModelConfig& mc = r.mc;
  Backbone* apart = r.cfg.drafter;
  const int own = apart ? apart->config().draft_block : mc.draft_block;
  const int k = r.cfg.draft_length > 0 ? r.cfg.draft_length : own > 0 ? own : 4;
  const TokenRule rule = token_rule(r.cfg, mc);
  const int P = r.size(), end = std::min(P + r.cfg.gen_length, mc.ctx);
  r.bb.truncate(0);
  if (apart) apart->truncate(0);
  // The prompt in one pass, as AR runs it: its last row (AR's first token) has AR's bits, and every pass after it
  // computes its causal rows as AR's one-row steps do (Model::forward_draft), so greedy output is AR's exactly.
  const int last = P - 1;
  r.logits_cached(0, P, std::span<const int>(&last, 1), true);
  bool prompt_pass = true;  // the first round verifies no drafts: AR's token from the prompt's last row
  Drafts d;
  std::vector<int32_t> pass;
  std::vector<float> draft_logits;
  // Drafts a round brings: a separate drafter's k; self-speculation's k masks bring k - 1 (AR's token takes the
  // first mask's position). Adaptive, fewer after a round that kept fewer.
  const int most = apart ? k : std::max(k - 1, 1);
  int len = most;
  for (;;) {
    const int m = r.size() - 1;
    if (apart && !prompt_pass) d = draft_apart(r, *apart, draft_logits, std::clamp(end - r.size() - 1, 0, len), rule);
    const int j = int(d.tokens.size());
    const int masks =
        !apart && !prompt_pass && (r.cfg.fused || j == 0) ? std::clamp(end - (m + 1 + j), 0, len + 1) : 0;
    if (!prompt_pass) {
      pass.assign(1, r.canvas()[size_t(m)]);
      pass.insert(pass.end(), d.tokens.begin(), d.tokens.end());
      pass.insert(pass.end(), size_t(masks), mc.mask_token);
      r.logits_draft(pass, 1 + j);
    }
    Verdict v = verify(r, m, d, rule);
    r.stats().drafted += j, r.stats().accepted += v.kept;
    // Adaptive: one more draft after a round that kept them all, else one more than were kept.
    if (r.cfg.adaptive_draft && j > 0) len = v.kept == j ? std::min(len + 1, most) : v.kept + 1;
    if (!prompt_pass) r.bb.advance(1 + v.kept);  // t and the kept drafts: their K/V are AR's
    prompt_pass = false;
    const auto eos = std::find(v.tokens.begin(), v.tokens.end(), mc.eos_token);
    const bool stop = r.cfg.stop_at_eos && mc.eos_token >= 0 && eos != v.tokens.end();
    if (stop) v.tokens.erase(eos + 1, v.tokens.end()), v.conf.resize(v.tokens.size());
    std::vector<int> at;
    for (int32_t t : v.tokens) at.push_back(r.size()), r.append(t);
    if (!r.commit(at, v.tokens, v.conf) || stop || r.size() >= end) return;
    // Every draft kept: the mask rows saw the committed sequence; the first mask's position now holds AR's token.
    const int room = end - r.size() - 1;  // a pass commits at most its drafts + 1
    d = v.kept == j && masks > 1
            ? draft(r, r.row(size_t(1 + j + 1)), mc.vocab, std::min(masks - 1, room), r.size(), rule)
            : Drafts{};
  }
}

}  // namespace unmask::detail
