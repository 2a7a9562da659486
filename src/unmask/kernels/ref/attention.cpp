#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "unmask/kernels/attention.h"

namespace unmask::ref {

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const KeySpan* spans,
                       int Tq, int Tk, int Hq, int Hkv, int D, float scale) {
  std::vector<double> s(Tk), acc(D);
  for (int t = 0; t < Tq; ++t)
    for (int h = 0; h < Hq; ++h) {
      const int g = h / (Hq / Hkv);
      const float* qr = q + (int64_t(t) * Hq + h) * D;
      const KeySpan& sp = spans[t];
      double m = -std::numeric_limits<double>::infinity();
      for (int j = 0; j < Tk; ++j) {
        bool seen = (j >= sp.begin0 && j < sp.end0) || (j >= sp.begin1 && j < sp.end1);
        s[j] = -std::numeric_limits<double>::infinity();
        if (!seen) continue;
        double dot = 0.0;
        for (int c = 0; c < D; ++c) dot += double(qr[c]) * k[(int64_t(j) * Hkv + g) * D + c];
        s[j] = dot * scale;
        m = std::max(m, s[j]);
      }
      double sum = 0.0;
      for (int c = 0; c < D; ++c) acc[c] = 0.0;
      for (int j = 0; j < Tk; ++j) {
        if (s[j] == -std::numeric_limits<double>::infinity()) continue;
        double p = std::exp(s[j] - m);
        sum += p;
        for (int c = 0; c < D; ++c) acc[c] += p * v[(int64_t(j) * Hkv + g) * D + c];
      }
      for (int c = 0; c < D; ++c) out[(int64_t(t) * Hq + h) * D + c] = float(acc[c] / sum);
      if (lse) lse[int64_t(t) * Hq + h] = float(m + std::log(sum));
    }
}

}  // namespace unmask::ref
