#include "unmask/diffusion/objective.h"

#include <algorithm>

#include "unmask/base/error.h"

namespace unmask {

ObjectiveKind parse_objective(std::string_view name) {
  if (name == "ar") return ObjectiveKind::kAR;
  if (name == "mdlm") return ObjectiveKind::kMDLM;
  if (name == "bd3") return ObjectiveKind::kBD3;
  if (name == "sft") return ObjectiveKind::kSFT;
  if (name == "joint") return ObjectiveKind::kJoint;
  fail("unknown objective '{}'; known: ar, mdlm, bd3, sft, joint", name);
}

std::string_view objective_name(ObjectiveKind k) {
  switch (k) {
    case ObjectiveKind::kAR: return "ar";
    case ObjectiveKind::kMDLM: return "mdlm";
    case ObjectiveKind::kBD3: return "bd3";
    case ObjectiveKind::kSFT: return "sft";
    case ObjectiveKind::kJoint: return "joint";
  }
  return "?";
}

MaskKind Objective::mask_kind() const {
  switch (kind) {
    case ObjectiveKind::kAR:
    case ObjectiveKind::kJoint: return MaskKind::kCausal;  // joint: AR is the plain decoding
    case ObjectiveKind::kMDLM:
    case ObjectiveKind::kSFT: return MaskKind::kBidirectional;
    case ObjectiveKind::kBD3: return MaskKind::kBlockCausal;
  }
  return MaskKind::kCausal;
}

void Objective::validate(const ModelConfig& c) const {
  if (kind != ObjectiveKind::kAR)
    check(mask_token >= 0 && mask_token < c.vocab, "objective {}: the mask token {} is not in the vocabulary of {}",
          objective_name(kind), mask_token, c.vocab);
  if (kind == ObjectiveKind::kBD3 || kind == ObjectiveKind::kJoint)
    check(block > 0, "objective {}: needs a block size > 0, got {}", objective_name(kind), block);
  if (kind == ObjectiveKind::kJoint)
    check(diffusion_weight >= 0, "objective joint: the diffusion weight is {}, expected >= 0", diffusion_weight);
  check(!shift || kind == ObjectiveKind::kMDLM || kind == ObjectiveKind::kSFT, "objective {}: shifted logits are "
        "trained with mdlm and sft only", objective_name(kind));
  check(shift == c.shift_logits, "objective {}: the model's logits are {}shifted, the objective's {}",
        objective_name(kind), c.shift_logits ? "" : "not ", shift ? "are" : "are not");
  check(eps > 0 && eps < 1, "objective: eps = {}, expected in (0, 1)", eps);
}

std::vector<double> stratified_times(int n, double eps, Rng& rng) {
  const double u = rng.uniform();
  std::vector<double> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    double s = u + double(i) / n;
    s -= s >= 1.0 ? 1.0 : 0.0;
    t[size_t(i)] = eps + (1.0 - eps) * s;
  }
  return t;
}

namespace {

// x0 (T) with each position masked with probability p: the noisy tokens, appended to xt; masked positions noted.
void mask_tokens(std::span<const int32_t> x0, double p, int32_t mask, Rng& rng, std::vector<int32_t>& xt,
                 std::vector<int>& masked) {
  for (size_t i = 0; i < x0.size(); ++i) {
    bool m = rng.uniform() < p;
    xt.push_back(m ? mask : x0[i]);
    if (m) masked.push_back(int(i));
  }
}

void add_ar(LossBatch& lb, std::span<const int32_t> w, int T, float weight) {
  int row0 = int(lb.batch.tokens.size());
  lb.batch.add(w.first(size_t(T)), MaskKind::kCausal);
  for (int i = 0; i < T; ++i) {
    lb.batch.rows.push_back(row0 + i);
    lb.targets.push_back(w[size_t(i) + 1]);
    lb.weights.push_back(weight);
  }
}

// x0 (T) whose first `keep` tokens stay clean (sft's prompt; 0 for mdlm, at least 1 when the logits are shifted),
// the rest masked at time t. Position p's logits are row p, or row p - 1 when shifted.
void add_mdlm(LossBatch& lb, const Objective& o, std::span<const int32_t> x0, double t, float norm, Rng& rng,
              int keep = 0) {
  if (o.shift) keep = std::max(keep, 1);
  const int row0 = int(lb.batch.tokens.size()) - (o.shift ? 1 : 0);
  std::vector<int32_t> xt(x0.begin(), x0.begin() + keep);
  std::vector<int> masked;
  mask_tokens(x0.subspan(size_t(keep)), 1.0 - schedule_alpha(o.schedule, t, o.eps), o.mask_token, rng, xt, masked);
  lb.batch.add(xt, MaskKind::kBidirectional);
  const float w = float(schedule_weight(o.schedule, t, o.eps)) * norm;
  for (int i : masked) {
    lb.batch.rows.push_back(row0 + keep + i);
    lb.targets.push_back(x0[size_t(keep + i)]);
    lb.weights.push_back(w);
  }
}

// The noisy half x_t of [x_t ; x_0]: each block of x0 (T) masked at its own time, appended to b.tokens; the masked
// rows (at row0 + position) get their loss, weighted by w(t) · norm.
void add_noisy_blocks(LossBatch& lb, const Objective& o, std::span<const int32_t> x0, std::span<const double> block_t,
                      float norm, Rng& rng) {
  const int T = int(x0.size()), B = o.block;
  const int row0 = int(lb.batch.tokens.size());
  std::vector<int32_t> xt;
  for (int s = 0, k = 0; s < T; s += B, ++k) {
    const int n = std::min(B, T - s);
    std::vector<int> m;
    mask_tokens(x0.subspan(size_t(s), size_t(n)), 1.0 - schedule_alpha(o.schedule, block_t[size_t(k)], o.eps),
                o.mask_token, rng, xt, m);
    const float w = float(schedule_weight(o.schedule, block_t[size_t(k)], o.eps)) * norm;
    for (int i : m) {
      lb.batch.rows.push_back(row0 + s + i);
      lb.targets.push_back(x0[size_t(s + i)]);
      lb.weights.push_back(w);
    }
  }
  lb.batch.tokens.insert(lb.batch.tokens.end(), xt.begin(), xt.end());
}

// [x_t ; x_0] with the x_t ⊕ x_0 mask: 2T rows; x_t rows at positions 0..T-1, then x_0 rows at the same positions.
// bd3: an x_0 row sees the clean blocks up to its own; joint: the clean positions up to its own (causal), and it
// carries the AR loss on the next token of the window w (T + 1).
void add_bd3(LossBatch& lb, const Objective& o, std::span<const int32_t> w, int T, std::span<const double> block_t,
             float norm, Rng& rng) {
  const bool joint = o.kind == ObjectiveKind::kJoint;
  const std::span<const int32_t> x0 = w.first(size_t(T));
  TrainBatch& b = lb.batch;
  const int row0 = int(b.tokens.size());
  add_noisy_blocks(lb, o, x0, block_t, joint ? norm * float(o.diffusion_weight) : norm, rng);
  b.tokens.insert(b.tokens.end(), x0.begin(), x0.end());
  for (int half = 0; half < 2; ++half)
    for (int i = 0; i < T; ++i) {
      const int blk = i / o.block, start = blk * o.block, end = std::min(start + o.block, T);
      b.pos.push_back(i);
      if (half == 0)
        b.spans.push_back({start, end, T, T + start});  // own noisy block, then the clean positions before it
      else
        b.spans.push_back({T, T + (joint ? i + 1 : end), 0, 0});  // clean: causal (joint), blocks up to its own
    }
  b.seq_begin.push_back(int32_t(b.tokens.size()));
  if (!joint) return;
  for (int i = 0; i < T; ++i) {
    b.rows.push_back(row0 + T + i);
    lb.targets.push_back(w[size_t(i) + 1]);
    lb.weights.push_back(norm);
  }
}

}  // namespace

LossBatch slice_sequences(const LossBatch& lb, int s0, int s1) {
  const TrainBatch& b = lb.batch;
  check(0 <= s0 && s0 <= s1 && s1 < int(b.seq_begin.size()), "slice_sequences: [{}, {}) of {} sequences", s0, s1,
        b.seq_begin.size() - 1);
  const int r0 = b.seq_begin[size_t(s0)], r1 = b.seq_begin[size_t(s1)];
  LossBatch out;
  TrainBatch& o = out.batch;
  o.tokens.assign(b.tokens.begin() + r0, b.tokens.begin() + r1);
  o.pos.assign(b.pos.begin() + r0, b.pos.begin() + r1);
  o.spans.assign(b.spans.begin() + r0, b.spans.begin() + r1);
  for (int s = s0 + 1; s <= s1; ++s) o.seq_begin.push_back(b.seq_begin[size_t(s)] - r0);
  for (size_t r = 0; r < b.rows.size(); ++r)
    if (b.rows[r] >= r0 && b.rows[r] < r1) {
      o.rows.push_back(b.rows[r] - r0);
      out.targets.push_back(lb.targets[r]);
      out.weights.push_back(lb.weights[r]);
    }
  return out;
}

LossBatch make_loss_batch(const Objective& o, std::span<const int32_t> windows, int B, int T, Rng& rng) {
  check(windows.size() == size_t(B) * size_t(T + 1), "make_loss_batch: {} tokens for {} windows of {} + 1", windows.size(),
        B, T);
  check(o.kind != ObjectiveKind::kSFT, "make_loss_batch: sft trains on examples (make_sft_loss_batch), not windows");
  LossBatch lb;
  const float norm = 1.0f / float(B * T);
  auto window = [&](int b) { return windows.subspan(size_t(b) * (T + 1), size_t(T + 1)); };
  if (o.kind == ObjectiveKind::kAR) {
    for (int b = 0; b < B; ++b) add_ar(lb, window(b), T, norm);
  } else if (o.kind == ObjectiveKind::kMDLM) {
    auto t = stratified_times(B, o.eps, rng);
    for (int b = 0; b < B; ++b) add_mdlm(lb, o, window(b).first(size_t(T)), t[size_t(b)], norm, rng);
  } else {
    const int blocks = (T + o.block - 1) / o.block;
    auto t = stratified_times(B * blocks, o.eps, rng);
    for (int b = 0; b < B; ++b)
      add_bd3(lb, o, window(b), T, std::span(t).subspan(size_t(b) * blocks, size_t(blocks)), norm, rng);
  }
  return lb;
}

LossBatch make_sft_loss_batch(const Objective& o, std::span<const int32_t> seqs, std::span<const int32_t> prompt_lens,
                              int B, int T, Rng& rng) {
  check(seqs.size() == size_t(B) * size_t(T) && prompt_lens.size() == size_t(B),
        "make_sft_loss_batch: {} tokens and {} prompt lengths for {} examples of {}", seqs.size(), prompt_lens.size(),
        B, T);
  LossBatch lb;
  auto t = stratified_times(B, o.eps, rng);
  for (int b = 0; b < B; ++b) {
    const int P = prompt_lens[size_t(b)];
    check(P >= 0 && P < T, "make_sft_loss_batch: example {} has a prompt of {} tokens, expected [0, {})", b, P, T);
    // LLaDA: Σ_masked CE / p_mask / answer_length, then / B.
    add_mdlm(lb, o, seqs.subspan(size_t(b) * T, size_t(T)), t[size_t(b)], 1.0f / (float(T - P) * float(B)), rng, P);
  }
  return lb;
}

}  // namespace unmask
