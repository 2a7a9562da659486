#include "unmask/eval/quality.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"

namespace unmask {

namespace {

// The n-gram of tokens starting at i, as a byte string (a hashable key).
std::string ngram_key(std::span<const int32_t> tokens, size_t i, int n) {
  return std::string(reinterpret_cast<const char*>(tokens.data() + i), size_t(n) * sizeof(int32_t));
}

size_t ngram_count(size_t length, int n) { return length >= size_t(n) ? length - size_t(n) + 1 : 0; }

// Unique n-grams of one sample.
size_t unique_ngrams(std::span<const int32_t> tokens, int n) {
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < ngram_count(tokens.size(), n); ++i) seen.insert(ngram_key(tokens, i, n));
  return seen.size();
}

}  // namespace

double token_entropy(std::span<const int32_t> tokens) {
  std::unordered_map<int32_t, int64_t> counts;
  for (int32_t t : tokens) ++counts[t];
  std::vector<int64_t> sorted;  // summed in a fixed order: the same bits whatever the hash table's order
  for (const auto& [t, c] : counts) sorted.push_back(c);
  std::sort(sorted.begin(), sorted.end());
  double h = 0;
  for (int64_t c : sorted) {
    const double p = double(c) / double(tokens.size());
    h -= p * std::log(p);
  }
  return h;
}

double unigram_entropy(Samples samples) {
  double sum = 0;
  int n = 0;
  for (const auto& s : samples) {
    if (s.empty()) continue;
    sum += token_entropy(s);
    ++n;
  }
  return n ? sum / n : 0.0;
}

double distinct_n(Samples samples, int n) {
  check(n >= 1, "distinct_n: n = {}, expected at least 1", n);
  std::unordered_set<std::string> seen;
  size_t total = 0;
  for (const auto& s : samples) {
    total += ngram_count(s.size(), n);
    for (size_t i = 0; i < ngram_count(s.size(), n); ++i) seen.insert(ngram_key(s, i, n));
  }
  return total ? double(seen.size()) / double(total) : 0.0;
}

double repetition_rate(Samples samples, int n) {
  check(n >= 1, "repetition_rate: n = {}, expected at least 1", n);
  double sum = 0;
  int counted = 0;
  for (const auto& s : samples) {
    const size_t total = ngram_count(s.size(), n);
    if (total == 0) continue;
    sum += 1.0 - double(unique_ngrams(s, n)) / double(total);
    ++counted;
  }
  return counted ? sum / counted : 0.0;
}

// ---- text

namespace {

// The length of the valid UTF-8 sequence at s[i], or 0 when the byte there does not start one (stray continuation
// byte, overlong form, surrogate, beyond U+10FFFF, truncated).
int utf8_length(std::string_view s, size_t i, char32_t& cp) {
  const auto b = [&](size_t k) { return uint8_t(s[k]); };
  const uint8_t c = b(i);
  const int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + size_t(len) > s.size()) return 0;
  cp = len == 1 ? c : c & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    if ((b(i + size_t(k)) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + size_t(k)) & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

std::vector<char32_t> code_points(std::string_view utf8) {
  std::vector<char32_t> out;
  for (size_t i = 0; i < utf8.size();) {
    char32_t cp = 0;
    const int len = utf8_length(utf8, i, cp);
    out.push_back(len ? cp : U'\uFFFD');
    i += size_t(len ? len : 1);
  }
  return out;
}

int64_t edit_distance(std::span<const char32_t> a, std::span<const char32_t> b) {
  // prev (|b| + 1): distances from a[0, i) to every prefix of b; cur: from a[0, i + 1).
  std::vector<int64_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = int64_t(j);
  for (size_t i = 0; i < a.size(); ++i) {
    cur[0] = int64_t(i) + 1;
    for (size_t j = 0; j < b.size(); ++j)
      cur[j + 1] = std::min({prev[j + 1] + 1, cur[j] + 1, prev[j] + (a[i] == b[j] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

double char_error_rate(std::string_view hypothesis, std::string_view reference) {
  const std::vector<char32_t> h = code_points(hypothesis), r = code_points(reference);
  check(!r.empty(), "character error rate: the reference text is empty");
  return double(edit_distance(h, r)) / double(r.size());
}

// ---- k-means

namespace {

double squared_distance(const double* a, const double* b, int d) {
  double s = 0;
  for (int j = 0; j < d; ++j) s += (a[j] - b[j]) * (a[j] - b[j]);
  return s;
}

// The nearest of the k centers (k, d) to the point x (d); ties go to the lower index.
int nearest(const double* x, const std::vector<double>& centers, int k, int d, double* dist) {
  int best = 0;
  double best_d = std::numeric_limits<double>::infinity();
  for (int c = 0; c < k; ++c) {
    const double s = squared_distance(x, centers.data() + size_t(c) * size_t(d), d);
    if (s < best_d) best = c, best_d = s;
  }
  if (dist) *dist = best_d;
  return best;
}

// k-means++: the first center uniform, each next one drawn with probability proportional to the squared distance to
// the nearest center so far. Stops early once every point coincides with a center. -> centers (k', d), k' <= k.
std::vector<double> seed_centers(std::span<const double> x, int n, int d, int k, Rng& rng) {
  const auto row = [&](int i) { return x.data() + size_t(i) * size_t(d); };
  const int first = int(rng.below(uint64_t(n)));
  std::vector<double> centers(row(first), row(first) + d);
  std::vector<double> dist(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) dist[size_t(i)] = squared_distance(row(i), centers.data(), d);
  for (int c = 1; c < k; ++c) {
    double total = 0;
    for (double v : dist) total += v;
    if (total <= 0) break;
    const double u = rng.uniform() * total;
    int pick = n - 1;
    double acc = 0;
    for (int i = 0; i < n; ++i)
      if ((acc += dist[size_t(i)]) > u && dist[size_t(i)] > 0) {
        pick = i;
        break;
      }
    centers.insert(centers.end(), row(pick), row(pick) + d);
    for (int i = 0; i < n; ++i)
      dist[size_t(i)] = std::min(dist[size_t(i)], squared_distance(row(i), row(pick), d));
  }
  return centers;
}

// Each center (k, d) moved to the mean of its points; a center without points stays where it is.
void update_centers(std::span<const double> x, int n, int d, const std::vector<int>& assign,
                    std::vector<double>& centers) {
  const int k = int(centers.size()) / d;
  std::vector<double> sum(centers.size(), 0.0);
  std::vector<int64_t> count(size_t(k), 0);
  for (int i = 0; i < n; ++i) {
    const int c = assign[size_t(i)];
    ++count[size_t(c)];
    for (int j = 0; j < d; ++j) sum[size_t(c) * size_t(d) + size_t(j)] += x[size_t(i) * size_t(d) + size_t(j)];
  }
  for (int c = 0; c < k; ++c)
    if (count[size_t(c)] > 0)
      for (int j = 0; j < d; ++j)
        centers[size_t(c) * size_t(d) + size_t(j)] = sum[size_t(c) * size_t(d) + size_t(j)] / double(count[size_t(c)]);
}

}  // namespace

std::vector<int> kmeans(std::span<const double> x, int n, int d, int k, int max_iter, uint64_t seed,
                        double* inertia) {
  check(n >= 1 && d >= 1 && k >= 1 && x.size() == size_t(n) * size_t(d),
        "kmeans: {} values for {} points of {} dimensions into {} clusters", x.size(), n, d, k);
  Rng rng(seed);
  std::vector<double> centers = seed_centers(x, n, d, std::min(k, n), rng);
  const int kk = int(centers.size()) / d;
  std::vector<int> assign(size_t(n), -1);
  double total = 0;
  for (int it = 0; it < std::max(max_iter, 1); ++it) {
    bool changed = false;
    total = 0;
    for (int i = 0; i < n; ++i) {
      double dist = 0;
      const int c = nearest(x.data() + size_t(i) * size_t(d), centers, kk, d, &dist);
      changed |= c != assign[size_t(i)];
      assign[size_t(i)] = c;
      total += dist;
    }
    if (!changed) break;
    update_centers(x, n, d, assign, centers);
  }
  if (inertia) *inertia = total;
  return assign;
}

// ---- MAUVE

namespace {

// KL(a ‖ r) in nats, 0 · log 0 = 0; r > 0 wherever a > 0.
double kl(const std::vector<double>& a, const std::vector<double>& r) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] > 0) s += a[i] * std::log(a[i] / r[i]);
  return s;
}

// Rows of f (n, d) scaled to unit length, appended to out as double.
void append_unit_rows(std::span<const float> f, int n, int d, std::vector<double>& out) {
  for (int i = 0; i < n; ++i) {
    const float* row = f.data() + size_t(i) * size_t(d);
    double norm = 0;
    for (int j = 0; j < d; ++j) norm += double(row[j]) * double(row[j]);
    norm = std::sqrt(norm);
    for (int j = 0; j < d; ++j) out.push_back(norm > 0 ? double(row[j]) / norm : 0.0);
  }
}

// The best of o.restarts k-means runs (least inertia; the earlier run on a tie) over x (n, d).
std::vector<int> best_clustering(const std::vector<double>& x, int n, int d, int k, const MauveOptions& o) {
  std::vector<int> best;
  double best_inertia = std::numeric_limits<double>::infinity();
  const Rng root(o.seed);
  for (int r = 0; r < std::max(o.restarts, 1); ++r) {
    double inertia = 0;
    std::vector<int> a = kmeans(x, n, d, k, o.max_iter, root.split(uint64_t(r)).next_u64(), &inertia);
    if (inertia < best_inertia) best = std::move(a), best_inertia = inertia;
  }
  return best;
}

}  // namespace

MauveResult mauve_of_histograms(std::vector<double> p, std::vector<double> q, const MauveOptions& o) {
  check(p.size() == q.size() && !p.empty(), "mauve: histograms of {} and {} bins, expected the same number (> 0)",
        p.size(), q.size());
  check(o.lambdas >= 2 && o.scaling > 0, "mauve: {} curve points and scaling {}, expected >= 2 and > 0", o.lambdas,
        o.scaling);
  MauveResult res;
  res.curve.emplace_back(1.0, 0.0);  // λ → 0 end: r = q
  std::vector<double> r(p.size());
  for (int j = 0; j < o.lambdas; ++j) {
    const double lambda = 1e-6 + (1.0 - 2e-6) * j / (o.lambdas - 1);
    for (size_t i = 0; i < p.size(); ++i) r[i] = lambda * p[i] + (1 - lambda) * q[i];
    res.curve.emplace_back(std::exp(-o.scaling * kl(q, r)), std::exp(-o.scaling * kl(p, r)));
  }
  res.curve.emplace_back(0.0, 1.0);  // λ → 1 end: r = p
  // x falls and y rises with λ: the trapezoids between consecutive points give the area under the curve.
  for (size_t i = 1; i < res.curve.size(); ++i) {
    const auto [x0, y0] = res.curve[i - 1];
    const auto [x1, y1] = res.curve[i];
    res.mauve += (x0 - x1) * (y0 + y1) / 2;
  }
  res.clusters = int(p.size());
  res.p_hist = std::move(p), res.q_hist = std::move(q);
  return res;
}

MauveResult mauve(std::span<const float> p, int n_p, std::span<const float> q, int n_q, int d,
                  const MauveOptions& o) {
  check(n_p >= 1 && n_q >= 1 && d >= 1, "mauve: {} model samples and {} reference texts of {} features, expected at "
        "least one of each", n_p, n_q, d);
  check(p.size() == size_t(n_p) * size_t(d) && q.size() == size_t(n_q) * size_t(d),
        "mauve: {} and {} feature values, expected {} x {} and {} x {}", p.size(), q.size(), n_p, d, n_q, d);
  check(o.clusters >= 0, "mauve: {} clusters, expected >= 0 (0: automatic)", o.clusters);
  std::vector<double> x;
  x.reserve(size_t(n_p + n_q) * size_t(d));
  append_unit_rows(p, n_p, d, x);
  append_unit_rows(q, n_q, d, x);
  const int k = o.clusters > 0 ? o.clusters : std::max(2, int(std::lround(std::min(n_p, n_q) / 10.0)));
  const std::vector<int> assign = best_clustering(x, n_p + n_q, d, k, o);
  const int used = *std::max_element(assign.begin(), assign.end()) + 1;
  std::vector<double> ph(size_t(used), 0.0), qh(size_t(used), 0.0);
  for (int i = 0; i < n_p; ++i) ph[size_t(assign[size_t(i)])] += 1.0 / n_p;
  for (int i = 0; i < n_q; ++i) qh[size_t(assign[size_t(n_p + i)])] += 1.0 / n_q;
  return mauve_of_histograms(std::move(ph), std::move(qh), o);
}

}  // namespace unmask
