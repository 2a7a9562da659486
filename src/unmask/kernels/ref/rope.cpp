#include <cmath>
#include <cstdint>

#include "unmask/kernels/rope.h"

namespace unmask::ref {

void rope_forward(float* x, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta) {
  for (int t = 0; t < T; ++t)
    for (int h = 0; h < H; ++h) {
      float* row = x + (int64_t(t) * H + h) * D;
      for (int i = 0; i < D / 2; ++i) {
        double angle = double(pos[t]) * std::pow(double(theta), -2.0 * i / D);
        int i0 = layout == RopeLayout::kNorm ? 2 * i : i;
        int i1 = layout == RopeLayout::kNorm ? 2 * i + 1 : i + D / 2;
        double a = row[i0], b = row[i1];
        row[i0] = float(a * std::cos(angle) - b * std::sin(angle));
        row[i1] = float(a * std::sin(angle) + b * std::cos(angle));
      }
    }
}

}  // namespace unmask::ref
