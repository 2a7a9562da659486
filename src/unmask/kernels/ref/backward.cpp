// Scalar twins of the backward kernels (attention is in backward_attention.cpp): the obvious loops, in double, with
// the same accumulate (+=) / write (=) conventions as the fast kernels. The tests' oracle.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/backward.h"

namespace unmask::ref {

// dtable (V, C) += scatter of dout (T, C) by tokens (T).
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int T, int V, int C) {
  std::vector<double> acc(size_t(V) * C, 0.0);
  for (int t = 0; t < T; ++t) {
    check(tokens[t] >= 0 && tokens[t] < V, "ref::embedding_backward: token {} at {} outside [0, {})", tokens[t], t, V);
    for (int c = 0; c < C; ++c) acc[size_t(tokens[t]) * C + c] += dout[int64_t(t) * C + c];
  }
  for (size_t i = 0; i < acc.size(); ++i) dtable[i] = float(dtable[i] + acc[i]);
}

// out = x·r·w with r = rstd (from the forward): dx += r·w·dout - r³/C · x · Σ_c dout·w·x; dw += Σ_t dout·x·r.
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      int T, int C, float eps) {
  std::vector<double> dwacc(C, 0.0);
  for (int t = 0; t < T; ++t) {
    const float *g = dout + int64_t(t) * C, *xr = x + int64_t(t) * C;
    const double r = rstd[t];
    double dot = 0.0;
    for (int c = 0; c < C; ++c) dot += double(g[c]) * w[c] * xr[c];
    for (int c = 0; c < C; ++c) {
      double d = r * w[c] * g[c] - r * r * r / C * xr[c] * dot;
      dx[int64_t(t) * C + c] = float(dx[int64_t(t) * C + c] + d);
      dwacc[c] += double(g[c]) * xr[c] * r;
    }
  }
  for (int c = 0; c < C; ++c) dw[c] = float(dw[c] + dwacc[c]);
}

// The transpose of the forward rotation: (a, b) -> (a cos + b sin, -a sin + b cos).
void rope_backward(float* dx, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta) {
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) {
      float* row = dx + (int64_t(t) * H + h) * D;
      for (int i = 0; i < D / 2; ++i) {
        const double angle = double(pos[t]) * std::pow(double(theta), -2.0 * i / D);
        const int i0 = layout == RopeLayout::kNorm ? 2 * i : i;
        const int i1 = layout == RopeLayout::kNorm ? 2 * i + 1 : i + D / 2;
        const double a = row[i0], b = row[i1];
        row[i0] = float(a * std::cos(angle) + b * std::sin(angle));
        row[i1] = float(-a * std::sin(angle) + b * std::cos(angle));
      }
    }
}

// out = g·σ(g)·u: dgate = dout·u·σ(g)·(1 + g·(1 - σ(g))), dup = dout·g·σ(g).
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i], u = up[i], d = dout[i];
    const double s = 1.0 / (1.0 + std::exp(-g));
    dgate[i] = float(d * u * s * (1.0 + g * (1.0 - s)));
    dup[i] = float(d * g * s);
  }
}

// dx (T, IC) = dout·W, dw (OC, IC) += doutᵀ·x, db (OC) += Σ_t dout.
void linear_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w, int T,
                     int OC, int IC) {
  for (int t = 0; dx && t < T; ++t)
    for (int i = 0; i < IC; ++i) {
      double s = 0.0;
      for (int o = 0; o < OC; ++o) s += double(dout[int64_t(t) * OC + o]) * w[int64_t(o) * IC + i];
      dx[int64_t(t) * IC + i] = float(s);
    }
  for (int o = 0; o < OC; ++o) {
    for (int i = 0; i < IC; ++i) {
      double s = 0.0;
      for (int t = 0; t < T; ++t) s += double(dout[int64_t(t) * OC + o]) * x[int64_t(t) * IC + i];
      dw[int64_t(o) * IC + i] = float(dw[int64_t(o) * IC + i] + s);
    }
    if (!db) continue;
    double s = 0.0;
    for (int t = 0; t < T; ++t) s += dout[int64_t(t) * OC + o];
    db[o] = float(db[o] + s);
  }
}

namespace {
// max and Σ exp(x - max) of one row, in double.
void row_stats(const float* xr, int V, double& m, double& s) {
  m = -std::numeric_limits<double>::infinity();
  for (int j = 0; j < V; ++j) m = std::max(m, double(xr[j]));
  s = 0.0;
  for (int j = 0; j < V; ++j) s += std::exp(double(xr[j]) - m);
}
}  // namespace

void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int T, int V) {
  for (int t = 0; t < T; ++t) {
    check(targets[t] >= -1 && targets[t] < V, "ref::cross_entropy_forward: target {} at {} outside [-1, {})",
          targets[t], t, V);
    if (targets[t] < 0) {
      losses[t] = 0.0f;
      continue;
    }
    double m, s;
    row_stats(logits + int64_t(t) * V, V, m, s);
    losses[t] = float(std::log(s) + (m - logits[int64_t(t) * V + targets[t]]));
  }
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss, int T,
                            int V) {
  for (int t = 0; t < T; ++t) {
    check(targets[t] >= -1 && targets[t] < V, "ref::cross_entropy_backward: target {} at {} outside [-1, {})",
          targets[t], t, V);
    const float* xr = logits + int64_t(t) * V;
    float* d = dlogits + int64_t(t) * V;
    double m = 0.0, s = 1.0;
    if (targets[t] >= 0) row_stats(xr, V, m, s);
    for (int j = 0; j < V; ++j) {
      if (targets[t] < 0) {
        d[j] = 0.0f;
        continue;
      }
      const double p = std::exp(double(xr[j]) - m) / s;
      d[j] = float((p - (j == targets[t] ? 1.0 : 0.0)) * dloss[t]);
    }
  }
}

}  // namespace unmask::ref
