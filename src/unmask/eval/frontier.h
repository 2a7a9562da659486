// The speed/quality frontier of a sampler: each setting it ran (a step budget, a threshold) is a point with its speed
// (generated tokens per forward pass, tokens per second, time to the first committed token) and the accuracy it
// reached on a task. The frontier is the set of points no other point beats on both tokens per forward and accuracy;
// its area is one number per sampler:
//
//   area = ∫_0^{x_max} f(x) dx,   x = tokens per forward, f(x) = accuracy,
//
// f linear between the frontier's points (the trapezoid rule), and flat from x = 0 to the slowest frontier point (a
// sampler can always run slower at the accuracy of its slowest setting). An AR model, one token per forward, has the
// area of its accuracy; a diffusion sampler that keeps accuracy a while as it commits more tokens per step has more.
//
//   std::vector<SpeedPoint> pts = {{"k=1", 1.0, ..., 0.9}, {"k=4", 4.0, ..., 0.5}};
//   double a = frontier_area(pts);     // 0.9 + (0.9 + 0.5) / 2 * 3 = 3.0
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace unmask {

struct SpeedPoint {
  std::string label;               // the setting ("k=4", "threshold=0.9", "ar")
  double tokens_per_forward = 0;   // generated tokens per model call, over every request of the setting
  double forwards_per_token = 0;   // its inverse
  double tokens_per_second = 0;    // generated tokens / wall-clock seconds of generation
  double first_token_seconds = 0;  // mean time from a request's start to its first committed token
  double accuracy = 0;             // the task's accuracy at this setting, in [0, 1]
  int requests = 0;                // generations behind the figures
};

// Indices of the points that no other point dominates (another point with tokens_per_forward and accuracy both at
// least as high, one of them higher), in order of tokens per forward, fastest last. Of identical points the first
// one given is kept.
std::vector<size_t> pareto_frontier(std::span<const SpeedPoint> points);

// The area under the frontier as defined above; 0 without points.
double frontier_area(std::span<const SpeedPoint> points);

}  // namespace unmask
