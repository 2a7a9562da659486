#include "unmask/diffusion/noise.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "unmask/base/error.h"

namespace unmask {

Schedule parse_schedule(std::string_view name) {
  if (name == "linear") return Schedule::kLinear;
  if (name == "cosine") return Schedule::kCosine;
  if (name == "loglinear" || name == "log-linear") return Schedule::kLogLinear;
  fail("unknown noise schedule '{}'; known: linear, cosine, loglinear", name);
}

std::string_view schedule_name(Schedule s) {
  switch (s) {
    case Schedule::kLinear: return "linear";
    case Schedule::kCosine: return "cosine";
    case Schedule::kLogLinear: return "loglinear";
  }
  return "?";
}

double schedule_alpha(Schedule s, double t, double eps) {
  switch (s) {
    case Schedule::kLinear: return 1.0 - t;
    case Schedule::kCosine: return std::cos(std::numbers::pi / 2 * t);
    case Schedule::kLogLinear: return 1.0 - (1.0 - eps) * t;
  }
  return 0;
}

double schedule_weight(Schedule s, double t, double eps) {
  switch (s) {
    case Schedule::kLinear: return 1.0 / t;
    case Schedule::kCosine: {
      double a = std::numbers::pi / 2 * t;
      return std::numbers::pi / 2 * std::sin(a) / (1.0 - std::cos(a));
    }
    case Schedule::kLogLinear: return 1.0 / t;  // (1 − eps) / ((1 − eps) t)
  }
  return 0;
}

double NoiseSchedule::reveal(double t, double s) const {
  const double at = alpha(t), as = alpha(s);
  return at >= 1.0 ? 1.0 : std::clamp((as - at) / (1.0 - at), 0.0, 1.0);
}

NoiseSchedule model_schedule(const ModelConfig& mc) {
  try {
    return {parse_schedule(mc.noise_schedule), mc.noise_eps};
  } catch (const Error& e) {
    fail("model: {} (unmask.diffusion.schedule)", e.what());
  }
}

}  // namespace unmask
