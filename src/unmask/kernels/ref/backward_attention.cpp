// Scalar twin of attention_backward, in double: for each query row, P = exp(scale·q·k - lse) over the visible
// keys (lse and out as the forward stored them), Dᵢ = dOᵢ·Oᵢ, dS = P ⊙ (dO·vᵀ - Dᵢ);
// dq = scale·dS·K (=), dk += scale·dSᵀ·q, dv += Pᵀ·dO.
#include <cmath>
#include <cstdint>
#include <vector>

#include "unmask/kernels/backward.h"

namespace unmask::ref {

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const KeySpan* spans, int Tq, int Tk,
                        int Hq, int Hkv, int D, float scale) {
  const size_t kv_n = size_t(Tk) * Hkv * D;
  std::vector<double> dk_acc(kv_n, 0.0), dv_acc(kv_n, 0.0), dq_acc(D);
  for (int t = 0; t < Tq; ++t)
    for (int h = 0; h < Hq; ++h) {
      const int g = h / (Hq / Hkv);
      const int64_t row = (int64_t(t) * Hq + h) * D;
      const KeySpan& sp = spans[t];
      double Di = 0.0;
      for (int c = 0; c < D; ++c) Di += double(dout[row + c]) * out[row + c];
      for (int c = 0; c < D; ++c) dq_acc[c] = 0.0;
      for (int j = 0; j < Tk; ++j) {
        if (!((j >= sp.begin0 && j < sp.end0) || (j >= sp.begin1 && j < sp.end1))) continue;
        const int64_t kr = (int64_t(j) * Hkv + g) * D;
        double s = 0.0, dp = 0.0;
        for (int c = 0; c < D; ++c) s += double(q[row + c]) * k[kr + c], dp += double(dout[row + c]) * v[kr + c];
        const double p = std::exp(s * scale - lse[int64_t(t) * Hq + h]);
        const double ds = p * (dp - Di) * scale;
        for (int c = 0; c < D; ++c) {
          dq_acc[c] += ds * k[kr + c];
          dk_acc[kr + c] += ds * q[row + c];
          dv_acc[kr + c] += p * dout[row + c];
        }
      }
      for (int c = 0; c < D; ++c) dq[row + c] = float(dq_acc[c]);
    }
  for (size_t i = 0; i < kv_n; ++i) dk[i] = float(dk[i] + dk_acc[i]), dv[i] = float(dv[i] + dv_acc[i]);
}

}  // namespace unmask::ref
