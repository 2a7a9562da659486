// Generation-quality metrics on hand-built inputs with known answers (entropy, distinct-n, repetition, CER over code
// points, k-means, MAUVE), the judge's scores against a direct computation, and `unmask eval gen` on the tiny
// trained models: figures in range, determinism by seed and thread count, the temperature frontier, refusals.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "../tools/tool_models.h"
#include "unmask/base/rng.h"
#include "unmask/eval/gen_eval.h"
#include "unmask/eval/quality.h"
#include "unmask/model/model.h"
#include "unmask/tokenizer/tokenizer.h"
#include "unmask/tokenizer/train.h"

namespace unmask {
namespace {

using json = nlohmann::json;
using Ids = std::vector<std::vector<int32_t>>;

// ---- entropy, distinct-n, repetition

TEST(Quality, EntropyOfAUniformHistogramIsLogK) {
  for (int k : {1, 2, 5, 17}) {
    std::vector<int32_t> s;
    for (int rep = 0; rep < 3; ++rep)
      for (int t = 0; t < k; ++t) s.push_back(100 + t);
    EXPECT_NEAR(token_entropy(s), std::log(double(k)), 1e-12) << "k = " << k;
  }
  // Averaged over samples (the empty one is left out): (log 4 + 0) / 2.
  const Ids samples = {{1, 2, 3, 4}, {5, 5, 5, 5}, {}};
  EXPECT_NEAR(unigram_entropy(samples), std::log(4.0) / 2, 1e-12);
  // A skewed histogram: p = (1/2, 1/4, 1/4).
  EXPECT_NEAR(token_entropy(std::vector<int32_t>{7, 7, 8, 9}), 1.5 * std::log(2.0), 1e-12);
}

TEST(Quality, DistinctNPoolsSamplesAndNeverCrossesThem) {
  const Ids s = {{1, 2, 3, 1, 2}, {1, 2}};
  EXPECT_DOUBLE_EQ(distinct_n(s, 1), 3.0 / 7);  // {1, 2, 3} of 7 tokens
  EXPECT_DOUBLE_EQ(distinct_n(s, 2), 3.0 / 5);  // 12 23 31 12 | 12
  EXPECT_DOUBLE_EQ(distinct_n(s, 3), 1.0);      // 123 231 312
  EXPECT_DOUBLE_EQ(distinct_n(s, 4), 1.0);      // 1231 2312
  // "2 1" would be a bigram only across the two samples.
  EXPECT_DOUBLE_EQ(distinct_n(Ids{{1}, {2}}, 2), 0.0);
  EXPECT_DOUBLE_EQ(distinct_n(Ids{{1, 2}, {2, 1}}, 2), 1.0);
  EXPECT_FALSE(test::error_of([&] { distinct_n(s, 0); }).empty());
}

TEST(Quality, RepetitionIsTheShareOfRepeatedFourGramsPerSample) {
  // 1234 2341 3412 4123 1234: one of five repeats; the all-distinct sample 0; the short one has no 4-gram.
  const Ids s = {{1, 2, 3, 4, 1, 2, 3, 4}, {1, 2, 3, 4, 5, 6}, {1, 2, 3}};
  EXPECT_DOUBLE_EQ(repetition_rate(s, 4), (0.2 + 0.0) / 2);
  EXPECT_DOUBLE_EQ(repetition_rate(Ids{std::vector<int32_t>(10, 9)}, 4), 1.0 - 1.0 / 7);
  EXPECT_DOUBLE_EQ(repetition_rate(Ids{{1, 2}}, 4), 0.0);
}

// ---- against a reference

TEST(Quality, CodePointsDecodeUtf8AndCountEachInvalidByteOnce) {
  EXPECT_EQ(code_points("a\xE2\x82\xAC"), (std::vector<char32_t>{U'a', U'\u20AC'}));
  EXPECT_EQ(code_points("\xF0\x9F\x98\x80"), (std::vector<char32_t>{U'\U0001F600'}));
  EXPECT_EQ(code_points("\xFF"), (std::vector<char32_t>{U'\uFFFD'}));
  EXPECT_EQ(code_points("\xE2\x82"), (std::vector<char32_t>{U'\uFFFD', U'\uFFFD'}));  // truncated
  EXPECT_EQ(code_points("\xC0\xAF"), (std::vector<char32_t>{U'\uFFFD', U'\uFFFD'}));  // overlong '/'
  EXPECT_EQ(code_points("\xED\xA0\x80").size(), 3u);                                   // a surrogate
}

TEST(Quality, CharacterErrorRateOfKnownEdits) {
  EXPECT_DOUBLE_EQ(char_error_rate("kitten", "sitting"), 3.0 / 7);  // 2 substitutions, 1 insertion
  EXPECT_DOUBLE_EQ(char_error_rate("abc", "abc"), 0.0);
  EXPECT_DOUBLE_EQ(char_error_rate("", "abcd"), 1.0);
  EXPECT_DOUBLE_EQ(char_error_rate("abcdef", "ab"), 2.0);  // 4 insertions over a reference of 2
  // Multi-byte: one substitution each of é and ö over 11 code points (bytes would count 2 per letter).
  EXPECT_DOUBLE_EQ(char_error_rate("h\xC3\xA9llo w\xC3\xB6rld", "hello world"), 2.0 / 11);
  EXPECT_DOUBLE_EQ(char_error_rate("hello world", "h\xC3\xA9llo w\xC3\xB6rld"), 2.0 / 11);
  // 日本語 against 日本: one deletion over 2 characters.
  EXPECT_DOUBLE_EQ(char_error_rate("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", "\xE6\x97\xA5\xE6\x9C\xAC"), 0.5);
  EXPECT_NE(test::error_of([] { char_error_rate("a", ""); }).find("reference text is empty"), std::string::npos);
  const std::vector<char32_t> a = code_points("sunday"), b = code_points("saturday");
  EXPECT_EQ(edit_distance(a, b), 3);
  EXPECT_EQ(edit_distance(b, a), 3);
}

// ---- k-means and MAUVE

// n points of dimension d around center (d) with Gaussian noise of the given scale.
void add_blob(std::vector<float>& out, const std::vector<float>& center, int n, double noise, Rng& rng) {
  for (int i = 0; i < n; ++i)
    for (float c : center) out.push_back(float(c + noise * rng.normal()));
}

// Unit vector along axis a (of d), times sign s and scale 5.
std::vector<float> axis(int d, int a, float s) {
  std::vector<float> v(size_t(d), 0.0f);
  v[size_t(a)] = 5 * s;
  return v;
}

// A mixture of 4 well-separated blobs in 8 dimensions (n per blob), or all n·4 points from blob 0 (mode collapse).
std::vector<float> mixture(int n, uint64_t seed, bool collapsed) {
  Rng rng(seed);
  std::vector<float> out;
  for (int b = 0; b < 4; ++b) add_blob(out, collapsed ? axis(8, 0, 1) : axis(8, b / 2, b % 2 ? -1.f : 1.f), n, 0.5, rng);
  return out;
}

TEST(Mauve, KmeansSeparatesBlobsAndIsDeterministic) {
  Rng rng(3);
  std::vector<float> f;
  add_blob(f, {10, 0}, 20, 0.3, rng);
  add_blob(f, {-10, 0}, 20, 0.3, rng);
  const std::vector<double> x(f.begin(), f.end());
  double inertia = 0;
  const std::vector<int> a = kmeans(x, 40, 2, 2, 100, 7, &inertia);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a[size_t(i)], a[0]) << i;
  for (int i = 20; i < 40; ++i) EXPECT_EQ(a[size_t(i)], a[20]) << i;
  EXPECT_NE(a[0], a[20]);
  EXPECT_LT(inertia, 40 * 2 * 0.3 * 0.3 * 3);  // about n · d · σ² of noise, far below the 4,000 between the blobs
  EXPECT_EQ(kmeans(x, 40, 2, 2, 100, 7), a);
  // Three distinct points cannot make five clusters.
  const std::vector<double> few = {0, 0, 1, 1, 2, 2, 0, 0};
  const std::vector<int> b = kmeans(few, 4, 2, 5, 100, 1);
  EXPECT_EQ(std::set<int>(b.begin(), b.end()).size(), 3u);
  EXPECT_EQ(b[0], b[3]);
}

TEST(Mauve, IsOneForEqualHistogramsAndTheAreaForDisjointOnes) {
  EXPECT_NEAR(mauve_of_histograms({0.2, 0.3, 0.5}, {0.2, 0.3, 0.5}).mauve, 1.0, 1e-9);
  // Disjoint supports: x = (1 − λ)^c, y = λ^c, whose area is c · B(c + 1, c) = 5 · 5! 4! / 10! = 1/252 for c = 5
  // (the 25-point trapezoid overestimates it a little).
  const MauveResult d = mauve_of_histograms({1, 0}, {0, 1});
  EXPECT_GT(d.mauve, 1.0 / 252);
  EXPECT_LT(d.mauve, 0.02);
  MauveOptions fine;
  fine.lambdas = 20001;
  EXPECT_NEAR(mauve_of_histograms({1, 0}, {0, 1}, fine).mauve, 1.0 / 252, 1e-6);
  ASSERT_EQ(d.curve.size(), 27u);
  EXPECT_EQ(d.curve.front(), std::make_pair(1.0, 0.0));
  EXPECT_EQ(d.curve.back(), std::make_pair(0.0, 1.0));
  // Closer histograms score higher.
  EXPECT_GT(mauve_of_histograms({0.3, 0.7}, {0.5, 0.5}).mauve, mauve_of_histograms({0.1, 0.9}, {0.5, 0.5}).mauve);
  EXPECT_FALSE(test::error_of([] { mauve_of_histograms({1}, {0.5, 0.5}); }).empty());
}

TEST(Mauve, SeparatesAFaithfulSetFromADegenerateOne) {
  const int n = 50, d = 8;
  const std::vector<float> q = mixture(n, 1, false), same = q, faithful = mixture(n, 2, false),
                           collapsed = mixture(n, 3, true);
  EXPECT_NEAR(mauve(same, 4 * n, q, 4 * n, d).mauve, 1.0, 1e-9);
  const double good = mauve(faithful, 4 * n, q, 4 * n, d).mauve, bad = mauve(collapsed, 4 * n, q, 4 * n, d).mauve;
  EXPECT_GT(good, 0.85);  // 0.91 to 0.99 over other seeds of the faithful set; the collapsed one stays near 0.06
  EXPECT_LT(bad, 0.2);
  // Two sets in clusters far apart.
  std::vector<float> far(q.size());
  for (size_t i = 0; i < q.size(); ++i) far[i] = i % d == 7 ? q[i] + 100 : q[i];
  EXPECT_LT(mauve(far, 4 * n, q, 4 * n, d).mauve, 0.02);
  // Deterministic by seed.
  EXPECT_EQ(mauve(collapsed, 4 * n, q, 4 * n, d).mauve, bad);
  EXPECT_FALSE(test::error_of([&] { mauve(q, 4 * n, q, 4 * n, d + 1); }).empty());
}

// ---- the judge

ModelConfig tiny_causal() {
  ModelConfig c = preset_config("tiny");
  c.vocab = 40, c.ctx = 32;
  return c;
}

TEST(Judge, HiddenStatesAreWhatTheOutputProjectionReads) {
  Model m = Model::random(tiny_causal(), 5);
  const ModelConfig& c = m.config();
  Batch b;
  b.add(std::vector<int32_t>{1, 5, 9, 3}), b.add(std::vector<int32_t>{2, 7});
  const size_t N = b.tokens.size();
  std::vector<float> logits(N * size_t(c.vocab)), hidden(N * size_t(c.d_model));
  m.forward(b, logits.data());
  m.forward_hidden(b, hidden.data());
  const float* w = m.weights().get().output.f32();  // (V, C)
  for (size_t i = 0; i < N; ++i)
    for (int v = 0; v < c.vocab; ++v) {
      double dot = 0, mag = 0;
      for (int k = 0; k < c.d_model; ++k) {
        dot += double(hidden[i * c.d_model + k]) * w[size_t(v) * c.d_model + k];
        mag += std::abs(double(hidden[i * c.d_model + k]) * w[size_t(v) * c.d_model + k]);
      }
      EXPECT_NEAR(logits[i * c.vocab + v], dot, c.d_model * std::numeric_limits<float>::epsilon() * mag * 2)
          << "row " << i << ", token " << v;
    }
}

TEST(Judge, ScoresTheGeneratedTokensGivenTheirPrompt) {
  Model m = Model::random(tiny_causal(), 6);
  const ModelConfig& c = m.config();
  const Ids prompts = {{1, 2}, {3}, {4, 5, 6}}, gen = {{7, 8, 9}, {}, {10}};
  const JudgeScores s = judge_texts(m, prompts, gen);
  ASSERT_EQ(s.nll.size(), 3u);
  EXPECT_EQ(s.count, (std::vector<int64_t>{3, 0, 1}));
  for (size_t t = 0; t < prompts.size(); ++t) {
    std::vector<int32_t> text = prompts[t];
    text.insert(text.end(), gen[t].begin(), gen[t].end());
    Batch b;
    b.add(text);
    std::vector<float> logits(text.size() * size_t(c.vocab)), hidden(text.size() * size_t(c.d_model));
    m.forward(b, logits.data());
    m.forward_hidden(b, hidden.data());
    double want = 0;
    for (size_t j = prompts[t].size(); j < text.size(); ++j) {
      const float* row = logits.data() + (j - 1) * size_t(c.vocab);
      double z = 0;
      for (int v = 0; v < c.vocab; ++v) z += std::exp(double(row[v]));
      want += std::log(z) - row[text[j]];
    }
    EXPECT_NEAR(s.nll[t], want, 1e-4 * (1 + want)) << "text " << t;
    // Features: the mean hidden state over the generated positions (the last prompt position when there are none).
    const size_t from = gen[t].empty() ? prompts[t].size() - 1 : prompts[t].size(), n = std::max<size_t>(1, gen[t].size());
    for (int k = 0; k < c.d_model; ++k) {
      double mean = 0;
      for (size_t j = from; j < from + n; ++j) mean += hidden[j * c.d_model + k] / double(n);
      EXPECT_NEAR(s.features[t * c.d_model + k], mean, 1e-4) << "text " << t << ", feature " << k;
    }
  }
  const TextFigures f = text_figures(gen, s);
  EXPECT_EQ(f.tokens, 4);
  EXPECT_EQ(f.empty, 1);
  EXPECT_NEAR(f.gen_ppl, std::exp((s.nll[0] + s.nll[2]) / 4), 1e-9);
  EXPECT_FALSE(test::error_of([&] { judge_texts(m, Ids{{}}, Ids{{1}}); }).empty());  // nothing to condition on
}

TEST(Judge, RefusesANonCausalJudgeAnotherVocabularyOrOtherTokens) {
  ModelConfig model = tiny_causal(), bidi = model, other = model;
  bidi.mask = MaskKind::kBidirectional;
  other.vocab = 41;
  EXPECT_NE(test::error_of([&] { check_judge(model, bidi, nullptr, nullptr); }).find("must be an autoregressive"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { check_judge(model, other, nullptr, nullptr); }).find("vocabulary has 41 tokens"),
            std::string::npos);
  Vocab a = byte_level_vocab(), b = a;
  b.tokens[65] = "B";
  const auto ta = make_tokenizer(a), tb = make_tokenizer(b);
  ModelConfig byte = model;
  byte.vocab = a.size();
  EXPECT_EQ(test::error_of([&] { check_judge(byte, byte, ta.get(), ta.get()); }), "");
  EXPECT_NE(test::error_of([&] { check_judge(byte, byte, ta.get(), tb.get()); }).find("token 65"), std::string::npos);
}

TEST(Prompts, CutDisjointWindowsFromTheReference) {
  std::vector<int32_t> ref(100);
  for (int i = 0; i < 100; ++i) ref[size_t(i)] = i;
  const EvalPrompts p = cut_reference(ref, 4, 3, 5, 999);
  ASSERT_EQ(p.prompts.size(), 4u);
  EXPECT_EQ(p.prompts[1], (std::vector<int32_t>{999, 25, 26, 27}));
  EXPECT_EQ(p.continuations[1], (std::vector<int32_t>{28, 29, 30, 31, 32}));
  EXPECT_EQ(p.prompt_tokens, 3);
  EXPECT_NE(test::error_of([&] { cut_reference(ref, 13, 3, 5, 999); }).find("the reference is 100 tokens; 13 samples"),
            std::string::npos);
  const EvalPrompts u = unconditional_prompts(3, 7, ref, 10);
  EXPECT_EQ(u.prompts, (Ids{{7}, {7}, {7}}));
  EXPECT_EQ(u.continuations[2], (std::vector<int32_t>{66, 67, 68, 69, 70, 71, 72, 73, 74, 75}));
  EXPECT_NE(test::error_of([] { unconditional_prompts(3, -1); }).find("this vocabulary has none"), std::string::npos);
}

// ---- unmask eval gen

std::string tmp(const std::string& name) { return test::temp_path("eval_gen", name); }

struct Reference {
  std::string path = tmp("reference.txt"), empty = tmp("empty.txt"), short_text = tmp("short.txt");
  Reference() {
    std::ofstream(path) << test::kVerses << test::kVerses << test::kVerses;
    std::ofstream(empty) << "";
    std::ofstream(short_text) << "In the beginning";
  }
  ~Reference() { std::filesystem::remove(path), std::filesystem::remove(empty), std::filesystem::remove(short_text); }
};

// The JSON object, the last line of the output (the progress lines on stderr come before it).
json run_json(const std::string& args) {
  const test::Result r = test::sh("eval gen " + args + " --json");
  EXPECT_EQ(r.code, 0) << args << "\n" << r.out;
  const size_t last = r.out.rfind('\n', r.out.size() >= 2 ? r.out.size() - 2 : 0);
  try {
    return json::parse(last == std::string::npos ? r.out : r.out.substr(last + 1));
  } catch (const std::exception& e) {
    ADD_FAILURE() << args << ": not JSON: " << r.out;
    return {};
  }
}

TEST(EvalGenCli, ScoresADiffusionModelAgainstTheReference) {
  const test::ToolModels m = test::tool_models();
  const Reference ref;
  const std::string args = "-m " + m.kjv_mdlm + " --judge " + m.kjv_ar + " --reference " + ref.path +
                           " --samples 8 --prompt-tokens 8 -n 16 --temps 0.5,1 -s 3";
  const json j = run_json(args);
  ASSERT_EQ(j["points"].size(), 2u) << j.dump();
  EXPECT_EQ(j["model"], m.kjv_mdlm);
  EXPECT_EQ(j["judge"], m.kjv_ar);
  EXPECT_EQ(j["seed"], 3);
  EXPECT_NE(j["command"].get<std::string>().find("--prompt-tokens 8"), std::string::npos);
  for (const json& p : j["points"]) {
    EXPECT_GT(p["gen_ppl"].get<double>(), 1.0) << p.dump();
    EXPECT_GE(p["entropy"].get<double>(), 0.0);
    for (const json& d : p["distinct"]) EXPECT_TRUE(d.get<double>() > 0 && d.get<double>() <= 1) << p.dump();
    EXPECT_TRUE(p["mauve"].get<double>() > 0 && p["mauve"].get<double>() <= 1 + 1e-9) << p.dump();
    EXPECT_TRUE(p["exact_match"].get<double>() >= 0 && p["exact_match"].get<double>() <= 1);
    EXPECT_GE(p["cer"].get<double>(), 0.0);
    ASSERT_EQ(p["samples"].size(), 8u);
    EXPECT_GT(p["tokens_per_forward"].get<double>(), 0.0);
  }
  // The reference continuations scored as samples: real text of the verses, which the AR twin has learnt.
  EXPECT_GT(j["reference"]["gen_ppl"].get<double>(), 1.0);
  EXPECT_LT(j["reference"]["gen_ppl"].get<double>(), j["points"][1]["gen_ppl"].get<double>());
  // Same seed, another thread count: the same samples and figures.
  const auto timeless = [](json points) {  // wall times differ from run to run
    for (json& p : points) p.erase("seconds"), p.erase("tokens_per_second");
    return points;
  };
  const json again = run_json(args + " -t 1");
  EXPECT_EQ(timeless(again["points"]), timeless(j["points"]));
  EXPECT_EQ(again["reference"], j["reference"]);
}

TEST(EvalGenCli, GreedyIsLessPerplexingThanHotSamplingAndThatIsNotTheWholeStory) {
  const test::ToolModels m = test::tool_models();
  const json j = run_json("-m " + m.kjv_ar + " --judge " + m.kjv_ar + " --samples 6 -n 24 --temps 0,2 -s 1");
  ASSERT_EQ(j["points"].size(), 2u);
  const json &greedy = j["points"][0], &hot = j["points"][1];
  EXPECT_LT(greedy["gen_ppl"].get<double>(), hot["gen_ppl"].get<double>());
  // Greedy from the BOS alone: every sample the same text, so distinct-4 is at most 1/6 of the hot samples'.
  EXPECT_LT(greedy["distinct"][3].get<double>(), hot["distinct"][3].get<double>());
  EXPECT_TRUE(j["points"][0]["mauve"].is_null());  // no reference, no MAUVE, EM or CER
  EXPECT_TRUE(j["points"][0]["cer"].is_null());
  EXPECT_TRUE(j["reference"].is_null());
}

TEST(EvalGenCli, PrintsOneRowPerTemperatureAndTheReference) {
  const test::ToolModels m = test::tool_models();
  const Reference ref;
  const test::Result r = test::sh("eval gen -m " + m.kjv_ar + " --judge " + m.kjv_ar + " --reference " + ref.path +
                                  " --samples 4 -n 8 --temps 0.7,1.0");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("gen-ppl"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MAUVE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n  0.70 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n  1.00 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n   ref "), std::string::npos) << r.out;
}

TEST(EvalGenCli, RefusesBadInputInOneLine) {
  const test::ToolModels m = test::tool_models();
  const Reference ref;
  const std::string other_vocab = tmp("vocab300.gguf");
  ASSERT_EQ(test::sh("init --config tiny --arch llama --vocab 300 --out " + other_vocab).code, 0);
  const std::string base = "eval gen -m " + m.kjv_mdlm + " --judge " + m.kjv_ar + " ";
  const std::pair<std::string, std::string> cases[] = {
      {"eval gen -m " + m.kjv_ar + " --judge " + m.kjv_mdlm, "the judge must be an autoregressive model"},
      {"eval gen -m " + m.kjv_ar + " --judge " + other_vocab, "vocabulary has 300 tokens"},
      {base + "--reference " + ref.empty, "the file is empty"},
      {base + "--reference " + ref.short_text + " --prompt-tokens 8 -n 16 --samples 8",
       "the reference is 16 tokens; 8 samples of 8 prompt + 16 continuation tokens need 192"},
      {base + "--reference /nonexistent/ref.txt", "/nonexistent/ref.txt"},
      {base + "--samples 0", "--samples"},
      {base + "--temps 0.7,-1", "--temps: -1 is not a temperature"},
      {base + "--temps 0.7,hot", "--temps"},
      {base + "--temp 0.5", "--temp: eval gen samples at every temperature of --temps"},
      {base + "--prompt-tokens 4", "--prompt-tokens 4: prompts are cut from the reference text"},
      {base + "--sampler ar", "--sampler ar needs a causal model"},
      {base + "--top-p 0", "--top-p 0: expected a value in (0, 1]"},  // before any sample, not once per sample
      {"eval gen -m " + m.kjv_mdlm, "--judge is required"},
  };
  for (const auto& [args, want] : cases) test::expect_error_line(args, want);
  std::filesystem::remove(other_vocab);
}

}  // namespace
}  // namespace unmask
