#include "unmask/eval/frontier.h"

#include <algorithm>
#include <numeric>

namespace unmask {

namespace {

bool dominates(const SpeedPoint& a, const SpeedPoint& b) {
  const bool no_worse = a.tokens_per_forward >= b.tokens_per_forward && a.accuracy >= b.accuracy;
  const bool better = a.tokens_per_forward > b.tokens_per_forward || a.accuracy > b.accuracy;
  return no_worse && better;
}

bool same(const SpeedPoint& a, const SpeedPoint& b) {
  return a.tokens_per_forward == b.tokens_per_forward && a.accuracy == b.accuracy;
}

}  // namespace

std::vector<size_t> pareto_frontier(std::span<const SpeedPoint> points) {
  std::vector<size_t> out;
  for (size_t i = 0; i < points.size(); ++i) {
    bool keep = true;
    for (size_t j = 0; j < points.size() && keep; ++j)
      keep = !dominates(points[j], points[i]) && !(j < i && same(points[j], points[i]));
    if (keep) out.push_back(i);
  }
  std::stable_sort(out.begin(), out.end(), [&](size_t a, size_t b) {
    return points[a].tokens_per_forward < points[b].tokens_per_forward;
  });
  return out;
}

double frontier_area(std::span<const SpeedPoint> points) {
  const std::vector<size_t> f = pareto_frontier(points);
  if (f.empty()) return 0;
  double area = points[f[0]].accuracy * points[f[0]].tokens_per_forward;  // flat from 0 to the slowest point
  for (size_t i = 1; i < f.size(); ++i) {
    const SpeedPoint &a = points[f[i - 1]], &b = points[f[i]];
    area += (a.accuracy + b.accuracy) / 2 * (b.tokens_per_forward - a.tokens_per_forward);
  }
  return area;
}

}  // namespace unmask
