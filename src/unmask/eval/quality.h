// Measures of generated text that do not need a model (`unmask eval gen` feeds them; docs/evaluation-gen.md):
//
//   unigram entropy   per sample, the entropy (nats) of the histogram of its tokens, averaged over the samples
//                     (MDLM's and ReMDM's "entropy": a sampler that repeats a few tokens scores low);
//   distinct-n        unique n-grams / all n-grams, pooled over the samples (n-grams never cross two samples);
//   rep-n             per sample, the share of its n-grams that repeat an earlier one of the same sample
//                     (1 − unique / all), averaged over the samples (Welleck et al.'s seq-rep-n);
//   CER, exact match  Levenshtein distance over Unicode code points / the reference's length; text equality;
//   MAUVE             Pillutla et al. 2021: features of the model's samples P and of reference texts Q, quantised
//                     jointly by k-means into k clusters, histograms p and q, the divergence curve
//                     (exp(−c·KL(q‖r_λ)), exp(−c·KL(p‖r_λ))) with r_λ = λp + (1 − λ)q, and the area under it.
//
//   std::vector<std::vector<int32_t>> s = {{1, 2, 3, 4}, {5, 5, 5, 5}};
//   unigram_entropy(s);      // (log 4 + 0) / 2
//   distinct_n(s, 1);        // 5 unique / 8
//   MauveResult m = mauve(p_feats, n_p, q_feats, n_q, d);   // m.mauve in (0, 1]
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace unmask {

using Samples = std::span<const std::vector<int32_t>>;

// ---- diversity and repetition (token ids)

double token_entropy(std::span<const int32_t> tokens);  // entropy (nats) of one sample's histogram; 0 when empty
double unigram_entropy(Samples samples);                 // mean of token_entropy over the non-empty samples
double distinct_n(Samples samples, int n);               // 0 when the samples hold no n-gram; n >= 1
double repetition_rate(Samples samples, int n = 4);      // mean over the samples with at least one n-gram

// ---- against a reference text (UTF-8)

// The code points of UTF-8 text; each byte that does not start a valid sequence counts as one (U+FFFD).
std::vector<char32_t> code_points(std::string_view utf8);
// Levenshtein distance (insertions, deletions and substitutions, each costing 1).
int64_t edit_distance(std::span<const char32_t> a, std::span<const char32_t> b);
// edit_distance(hypothesis, reference) / |reference| in code points; throws for an empty reference.
double char_error_rate(std::string_view hypothesis, std::string_view reference);

// ---- MAUVE

struct MauveOptions {
  int clusters = 0;     // k; 0: max(2, round(min(|P|, |Q|) / 10)), the reference implementation's rule (about 20
                        // points per cluster when |P| = |Q|: finer clusters make equal distributions score lower)
  int restarts = 5;     // k-means runs from different k-means++ seeds; the one of least inertia is kept
  int max_iter = 500;   // Lloyd iterations per run (a run stops earlier once no point changes cluster)
  int lambdas = 25;     // points of the curve: λ = linspace(1e-6, 1 − 1e-6, lambdas), as the reference code
  double scaling = 5;   // c
  uint64_t seed = 0;
};

struct MauveResult {
  double mauve = 0;
  int clusters = 0;                                // k used (fewer when the features hold fewer distinct points)
  std::vector<double> p_hist, q_hist;              // (k) the share of P's and Q's points in each cluster
  std::vector<std::pair<double, double>> curve;    // the divergence curve, (1, 0) first and (0, 1) last
};

// k-means of the rows of x (n, d): k-means++ seeding from the seeded generator, Lloyd's iterations, ties to the
// lower cluster; returns each row's cluster (n). Fewer than k clusters when x holds fewer distinct rows.
std::vector<int> kmeans(std::span<const double> x, int n, int d, int k, int max_iter, uint64_t seed,
                        double* inertia = nullptr);

// The area under the divergence curve of two histograms over the same k bins (each summing to 1).
MauveResult mauve_of_histograms(std::vector<double> p, std::vector<double> q, const MauveOptions& o = {});

// p (n_p, d), q (n_q, d): feature rows of the model's samples and of the reference texts. Each row is scaled to unit
// length (as the reference implementation's default), then both sets are clustered together.
MauveResult mauve(std::span<const float> p, int n_p, std::span<const float> q, int n_q, int d,
                  const MauveOptions& o = {});

}  // namespace unmask
