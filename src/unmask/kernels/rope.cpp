#include "unmask/kernels/rope.h"

#include <cmath>
#include <vector>

#include "unmask/base/error.h"

namespace unmask {

namespace {

// Rotates the D/2 pairs of one head row by (cos, sin) (D/2 each). Pair i is (x[i*stride_pair], x[i*stride_pair +
// offset]): adjacent pairs have stride 2 and offset 1, half-split pairs stride 1 and offset D/2.
inline void rotate_row(float* x, const float* cs, const float* sn, int half, int stride, int offset) {
#pragma omp simd
  for (int i = 0; i < half; ++i) {
    float a = x[i * stride], b = x[i * stride + offset];
    x[i * stride] = a * cs[i] - b * sn[i];
    x[i * stride + offset] = a * sn[i] + b * cs[i];
  }
}

}  // namespace

// x (T, H, D) in place; pos (T). The inverse frequencies are computed in double once per call; each row's angles
// pos·inv_freq are formed in double and their cos/sin (rounded to f32) reused by all H heads.
void rope_forward(float* x, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta) {
  check(D > 0 && D % 2 == 0 && theta > 0.0f, "rope_forward: head size {} must be even and positive, theta {} positive",
        D, theta);
  const int half = D / 2;
  std::vector<double> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(double(theta), -2.0 * i / D);
  const int stride = layout == RopeLayout::kNorm ? 2 : 1;
  const int offset = layout == RopeLayout::kNorm ? 1 : half;
#pragma omp parallel if (int64_t(T) * H * D >= 16384)
  {
    std::vector<float> cs(half), sn(half);
#pragma omp for schedule(static)
    for (int t = 0; t < T; ++t) {
      for (int i = 0; i < half; ++i) {
        double a = double(pos[t]) * inv_freq[i];
        cs[i] = float(std::cos(a));
        sn[i] = float(std::sin(a));
      }
      for (int h = 0; h < H; ++h)
        rotate_row(x + (int64_t(t) * H + h) * D, cs.data(), sn.data(), half, stride, offset);
    }
  }
}

}  // namespace unmask
