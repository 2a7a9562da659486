#include "unmask/eval/gen_eval.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/base/timer.h"
#include "unmask/sampling/batch.h"
#include "unmask/sampling/text.h"

namespace unmask {

// ---- prompts

namespace {

std::vector<int32_t> with_bos(int32_t bos, std::span<const int32_t> tokens) {
  std::vector<int32_t> out;
  if (bos >= 0) out.push_back(bos);
  out.insert(out.end(), tokens.begin(), tokens.end());
  return out;
}

// The size of each of `samples` disjoint windows of `window` tokens in a text of L tokens; throws when they do not fit.
size_t window_stride(std::span<const int32_t> reference, int samples, int window, const char* what) {
  check(samples >= 1, "samples: {}, expected at least 1", samples);
  const size_t need = size_t(samples) * size_t(window);
  check(reference.size() >= need, "the reference is {} tokens; {} samples of {} need {} (a longer text, or fewer "
        "samples)", reference.size(), samples, what, need);
  return reference.size() / size_t(samples);
}

}  // namespace

EvalPrompts cut_reference(std::span<const int32_t> reference, int samples, int prompt_tokens, int gen_length,
                          int32_t bos) {
  check(prompt_tokens >= 1, "prompt tokens: {}, expected at least 1 (0: unconditional_prompts)", prompt_tokens);
  check(gen_length >= 1, "generation length: {}, expected at least 1", gen_length);
  const std::string what = fmt::format("{} prompt + {} continuation tokens", prompt_tokens, gen_length);
  const size_t stride = window_stride(reference, samples, prompt_tokens + gen_length, what.c_str());
  EvalPrompts e;
  e.prompt_tokens = prompt_tokens;
  for (int i = 0; i < samples; ++i) {
    const auto w = reference.subspan(size_t(i) * stride, size_t(prompt_tokens + gen_length));
    e.prompts.push_back(with_bos(bos, w.first(size_t(prompt_tokens))));
    e.continuations.emplace_back(w.begin() + prompt_tokens, w.end());
  }
  return e;
}

EvalPrompts unconditional_prompts(int samples, int32_t bos, std::span<const int32_t> reference, int gen_length) {
  check(samples >= 1, "samples: {}, expected at least 1", samples);
  check(bos >= 0, "unconditional generation starts from the BOS token, and this vocabulary has none (cut prompts "
        "from a reference text instead)");
  EvalPrompts e;
  e.prompts.assign(size_t(samples), {bos});
  if (reference.empty()) return e;
  check(gen_length >= 1, "generation length: {}, expected at least 1", gen_length);
  const std::string what = fmt::format("{} tokens", gen_length);
  const size_t stride = window_stride(reference, samples, gen_length, what.c_str());
  for (int i = 0; i < samples; ++i) {
    const auto w = reference.subspan(size_t(i) * stride, size_t(gen_length));
    e.continuations.emplace_back(w.begin(), w.end());
  }
  return e;
}

void check_judge(const ModelConfig& model, const ModelConfig& judge, const Tokenizer* model_tok,
                 const Tokenizer* judge_tok) {
  check(judge.mask == MaskKind::kCausal, "the judge must be an autoregressive model (causal mask); this {} model is "
        "{}", judge.arch, mask_kind_name(judge.mask));
  check(judge.vocab == model.vocab, "the judge's vocabulary has {} tokens, the model's {}: the judge must share the "
        "model's tokenizer (its AR twin)", judge.vocab, model.vocab);
  if (model_tok == nullptr || judge_tok == nullptr) return;
  check(model_tok->n_vocab() == judge_tok->n_vocab(), "the judge's tokenizer has {} tokens, the model's {}",
        judge_tok->n_vocab(), model_tok->n_vocab());
  for (int32_t id = 0; id < model_tok->n_vocab(); ++id)
    check(model_tok->token_text(id) == judge_tok->token_text(id), "token {} is '{}' for the model and '{}' for the "
          "judge: the judge must share the model's tokenizer", id, model_tok->token_text(id),
          judge_tok->token_text(id));
}

// ---- the judge

double JudgeScores::nll_per_token() const {
  const int64_t n = std::accumulate(count.begin(), count.end(), int64_t(0));
  return n ? std::accumulate(nll.begin(), nll.end(), 0.0) / double(n) : 0.0;
}

namespace {

// −log softmax(row)[target] in double; row (V).
double token_nll(const float* row, int V, int32_t target) {
  double mx = row[0];
  for (int v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
  double sum = 0;
  for (int v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
  return mx + std::log(sum) - double(row[target]);
}

// Texts [begin, end) in one judge pass: the NLL of each generated token (row j predicts token j + 1) and the mean
// hidden state over the generated positions, into out's slots.
void judge_range(Model& judge, const TokenLists& prompts, const TokenLists& gen, size_t begin, size_t end,
                 JudgeScores& out) {
  const int V = judge.config().vocab, C = judge.config().d_model;
  Batch b;
  std::vector<int32_t> rows, targets;
  for (size_t i = begin; i < end; ++i) {
    const int32_t base = b.begin.back(), p = int32_t(prompts[i].size());
    std::vector<int32_t> text = prompts[i];
    text.insert(text.end(), gen[i].begin(), gen[i].end());
    b.add(text);
    for (size_t j = 0; j < gen[i].size(); ++j) rows.push_back(base + p - 1 + int32_t(j)), targets.push_back(gen[i][j]);
  }
  std::vector<float> logits(rows.size() * size_t(V)), hidden(b.tokens.size() * size_t(C));
  if (!rows.empty()) judge.forward(b, logits.data(), rows);
  judge.forward_hidden(b, hidden.data());
  size_t r = 0;
  for (size_t i = begin; i < end; ++i) {
    const size_t g = gen[i].size(), first = size_t(b.begin[i - begin]) + prompts[i].size();
    for (size_t j = 0; j < g; ++j, ++r) out.nll[i] += token_nll(logits.data() + r * size_t(V), V, targets[r]);
    out.count[i] = int64_t(g);
    const size_t from = g ? first : first - 1, n = std::max<size_t>(g, 1);
    float* f = out.features.data() + i * size_t(C);
    for (size_t k = from; k < from + n; ++k)
      for (int c = 0; c < C; ++c) f[c] += hidden[k * size_t(C) + size_t(c)] / float(n);
  }
}

}  // namespace

JudgeScores judge_texts(Model& judge, const TokenLists& prompts, const TokenLists& generated) {
  check(prompts.size() == generated.size(), "judge: {} prompts for {} texts", prompts.size(), generated.size());
  const ModelConfig& jc = judge.config();
  JudgeScores s;
  s.dim = jc.d_model;
  s.nll.assign(prompts.size(), 0.0), s.count.assign(prompts.size(), 0);
  s.features.assign(prompts.size() * size_t(jc.d_model), 0.0f);
  // Batches of texts whose logits stay within about 16M floats (and at least one text per batch).
  const size_t budget = std::max<size_t>(size_t(jc.ctx), (size_t(1) << 24) / size_t(jc.vocab));
  for (size_t begin = 0, end = 0; begin < prompts.size(); begin = end) {
    size_t rows = 0;
    for (end = begin; end < prompts.size(); ++end) {
      const size_t len = prompts[end].size() + generated[end].size();
      check(!prompts[end].empty() && len <= size_t(jc.ctx), "judge: text {} is {} tokens with a prompt of {}, "
            "expected a prompt and at most the judge's context of {}", end, len, prompts[end].size(), jc.ctx);
      if (end > begin && rows + len > budget) break;
      rows += len;
    }
    judge_range(judge, prompts, generated, begin, end, s);
  }
  return s;
}

TextFigures text_figures(const TokenLists& generated, const JudgeScores& j) {
  TextFigures f;
  for (const auto& g : generated) f.tokens += int64_t(g.size()), f.empty += g.empty();
  f.mean_length = generated.empty() ? 0.0 : double(f.tokens) / double(generated.size());
  f.nll_per_token = j.nll_per_token();
  f.gen_ppl = f.tokens ? std::exp(f.nll_per_token) : std::nan("");  // no token: no perplexity
  f.entropy = unigram_entropy(generated);
  for (int n = 1; n <= 4; ++n) f.distinct[size_t(n - 1)] = distinct_n(generated, n);
  f.rep4 = repetition_rate(generated, 4);
  return f;
}

// ---- the sweep

namespace {

void check_options(const GenEvalOptions& o, const EvalPrompts& ps) {
  check(!ps.prompts.empty(), "no prompts to sample");
  check(ps.continuations.empty() || ps.continuations.size() == ps.prompts.size(), "{} continuations for {} prompts",
        ps.continuations.size(), ps.prompts.size());
  check(!o.temperatures.empty(), "no temperature to sample at");
  for (double t : o.temperatures)
    check(std::isfinite(t) && t >= 0, "temperature {}: expected a finite number >= 0 (0: greedy)", t);
  check(o.batch >= 1, "batch: {}, expected at least 1", o.batch);
}

// Every text (prompt + gen_length) fits both models' contexts.
void check_fits(const ModelConfig& model, const ModelConfig& judge, const EvalPrompts& ps, int gen_length) {
  size_t longest = 0;
  for (const auto& p : ps.prompts) longest = std::max(longest, p.size());
  const size_t len = longest + size_t(std::max(gen_length, 0));
  check(len <= size_t(model.ctx) && len <= size_t(judge.ctx), "prompts of up to {} tokens and {} generated make "
        "texts of {} tokens; the model's context is {} and the judge's {}", longest, gen_length, len, model.ctx,
        judge.ctx);
}

// Sample i's seed: from the sweep's seed and i alone.
uint64_t sample_seed(uint64_t seed, size_t i) { return Rng(seed).split(uint64_t(i)).next_u64(); }

// Every prompt sampled at temperature t, in batches of o.batch requests -> the samples cut before EOS.
TokenLists sample_all(Model& model, const EvalPrompts& ps, const GenEvalOptions& o, double t, GenEvalPoint& pt,
                      const std::function<void(int64_t)>& advance) {
  TokenLists out;
  const int32_t eos = model.config().eos_token;
  Timer timer;
  for (size_t begin = 0; begin < ps.prompts.size(); begin += size_t(o.batch)) {
    const size_t end = std::min(ps.prompts.size(), begin + size_t(o.batch));
    std::vector<Request> reqs(end - begin);
    for (size_t i = begin; i < end; ++i) {
      reqs[i - begin].cfg = o.sampler;
      reqs[i - begin].cfg.temperature = t, reqs[i - begin].cfg.seed = sample_seed(o.seed, i);
      reqs[i - begin].prompt = ps.prompts[i];
    }
    const BatchResult b = generate_batch(model, reqs);
    for (size_t i = begin; i < end; ++i) {
      const BatchOutcome& bo = b.outcomes[i - begin];
      check(bo.ok(), "sample {} at temperature {}: {}", i, t, bo.error);
      out.push_back(bo.result.output(eos));
      pt.forward_passes += bo.result.stats.forward_passes;
    }
    advance(int64_t(end - begin));
  }
  pt.seconds = timer.seconds();
  return out;
}

// Exact match and CER of each sample's text against its true continuation, averaged over the samples.
void score_against_reference(const TokenLists& samples, const TokenLists& refs, const Tokenizer* tok,
                             GenEvalPoint& pt) {
  double em = 0, cer = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const std::string hyp = decode_text(tok, samples[i]), ref = decode_text(tok, refs[i]);
    em += hyp == ref;
    cer += ref.empty() ? double(!hyp.empty()) : char_error_rate(hyp, ref);
  }
  pt.exact_match = em / double(samples.size());
  pt.cer = cer / double(samples.size());
}

}  // namespace

GenEvalReport run_gen_eval(Model& model, Model& judge, const EvalPrompts& ps, const GenEvalOptions& o,
                           const Tokenizer* tok, const GenEvalProgress& progress) {
  check_options(o, ps);
  check_judge(model.config(), judge.config(), nullptr, nullptr);
  check_fits(model.config(), judge.config(), ps, o.sampler.gen_length);
  validate(o.sampler, model.config(), int(ps.prompts[0].size()));  // before any sample, not once per sample
  GenEvalReport r;
  std::optional<JudgeScores> ref;
  if (!ps.continuations.empty()) {
    ref = judge_texts(judge, ps.prompts, ps.continuations);
    r.reference = text_figures(ps.continuations, *ref);
  }
  const int64_t total = int64_t(o.temperatures.size() * ps.prompts.size());
  int64_t done = 0;
  const auto advance = [&](int64_t n) {
    if (progress) progress(done += n, total);
  };
  MauveOptions mo = o.mauve;
  mo.seed = o.seed;
  for (double t : o.temperatures) {
    GenEvalPoint& pt = r.points.emplace_back();
    pt.temperature = t;
    pt.samples = sample_all(model, ps, o, t, pt, advance);
    const JudgeScores js = judge_texts(judge, ps.prompts, pt.samples);
    pt.figures = text_figures(pt.samples, js);
    if (ref)
      pt.mauve = mauve(js.features, int(pt.samples.size()), ref->features, int(ps.continuations.size()), js.dim, mo);
    if (ps.prompt_tokens > 0 && !ps.continuations.empty())
      score_against_reference(pt.samples, ps.continuations, tok, pt);
  }
  return r;
}

// ---- JSON

namespace {

nlohmann::json figures_json(const TextFigures& f) {
  return {{"gen_ppl", f.gen_ppl}, {"nll_per_token", f.nll_per_token}, {"tokens", f.tokens},
          {"mean_length", f.mean_length}, {"empty", f.empty}, {"entropy", f.entropy},
          {"distinct", f.distinct}, {"rep4", f.rep4}};
}

nlohmann::json point_json(const GenEvalPoint& p, const Tokenizer* tok) {
  nlohmann::json j = figures_json(p.figures);
  j["temperature"] = p.temperature;
  j["mauve"] = p.mauve ? nlohmann::json(p.mauve->mauve) : nlohmann::json();
  if (p.mauve) j["mauve_detail"] = {{"clusters", p.mauve->clusters}, {"p_hist", p.mauve->p_hist},
                                   {"q_hist", p.mauve->q_hist}, {"curve", p.mauve->curve}};
  j["exact_match"] = p.exact_match ? nlohmann::json(*p.exact_match) : nlohmann::json();
  j["cer"] = p.cer ? nlohmann::json(*p.cer) : nlohmann::json();
  j["forward_passes"] = p.forward_passes;
  j["seconds"] = p.seconds;
  j["tokens_per_second"] = p.tokens_per_second();
  j["tokens_per_forward"] = p.tokens_per_forward();
  nlohmann::json samples = nlohmann::json::array();
  for (const auto& s : p.samples) {
    nlohmann::json one = {{"ids", s}};
    if (tok) one["text"] = decode_text(tok, s);
    samples.push_back(std::move(one));
  }
  j["samples"] = std::move(samples);
  return j;
}

}  // namespace

nlohmann::json report_json(const GenEvalReport& r, const Tokenizer* tok) {
  nlohmann::json points = nlohmann::json::array();
  for (const GenEvalPoint& p : r.points) points.push_back(point_json(p, tok));
  return {{"points", std::move(points)},
          {"reference", r.reference ? figures_json(*r.reference) : nlohmann::json()}};
}

}  // namespace unmask
