// RMSNorm over the last axis.
#pragma once

namespace unmask {

// x (T, C), w (C) -> out (T, C) = x / sqrt(mean(x²) + eps) * w; rstd (T) kept for the backward pass (may be null).
// out may alias x.
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int T, int C, float eps);

namespace ref {
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int T, int C, float eps);
}

}  // namespace unmask
