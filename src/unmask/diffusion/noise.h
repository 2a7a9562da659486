// Noise schedules of absorbing-state (masked) diffusion: α(t) is the probability that a token is still clean at
// time t ∈ [0, 1] (α(0) = 1); a token is masked with probability 1 − α(t). The ELBO weighs the cross-entropy of a
// masked position by −α'(t) / (1 − α(t)), which is 1/t for the linear schedule (MDLM, LLaDA).
#pragma once

#include <string_view>

#include "unmask/model/config.h"

namespace unmask {

enum class Schedule { kLinear, kCosine, kLogLinear };

Schedule parse_schedule(std::string_view name);  // linear, cosine, loglinear; throws listing them
std::string_view schedule_name(Schedule s);

// eps keeps α(1) = eps for the log-linear schedule (MDLM); the others reach 0 at t = 1.
double schedule_alpha(Schedule s, double t, double eps);
double schedule_weight(Schedule s, double t, double eps);  // −α'(t) / (1 − α(t)), for t > 0

// A schedule with its eps, as a model was trained with it.
struct NoiseSchedule {
  Schedule kind = Schedule::kLinear;
  double eps = 1e-3;
  double alpha(double t) const { return schedule_alpha(kind, t, eps); }
  double weight(double t) const { return schedule_weight(kind, t, eps); }
  // The probability that a position still masked at time t is revealed by time s < t: (α(s) − α(t)) / (1 − α(t)).
  double reveal(double t, double s) const;
};
NoiseSchedule model_schedule(const ModelConfig& mc);  // throws naming the file's unknown schedule

}  // namespace unmask
