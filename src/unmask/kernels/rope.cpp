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

std::vector<double> inverse_frequencies(int D, float theta) {
  check(D > 0 && D % 2 == 0 && theta > 0.0f, "rope: head size {} must be even and positive, theta {} positive", D,
        theta);
  std::vector<double> inv(size_t(D / 2));
  for (int i = 0; i < D / 2; ++i) inv[size_t(i)] = std::pow(double(theta), -2.0 * i / D);
  return inv;
}

// cs, sn (D/2) <- the rounded cos and sin of pos·inv_freq, the angles formed in double.
inline void angles(float* cs, float* sn, int32_t pos, const std::vector<double>& inv_freq) {
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    double a = double(pos) * inv_freq[i];
    cs[i] = float(std::cos(a));
    sn[i] = float(std::sin(a));
  }
}

int pair_stride(RopeLayout layout) { return layout == RopeLayout::kNorm ? 2 : 1; }
int pair_offset(RopeLayout layout, int half) { return layout == RopeLayout::kNorm ? 1 : half; }

}  // namespace

// x (T, H, D) in place; pos (T). The inverse frequencies are computed in double once per call; each row's angles
// pos·inv_freq are formed in double and their cos/sin (rounded to f32) reused by all H heads.
void rope_forward(float* x, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta) {
  const std::vector<double> inv_freq = inverse_frequencies(D, theta);
  const int half = D / 2, stride = pair_stride(layout), offset = pair_offset(layout, half);
#pragma omp parallel if (int64_t(T) * H * D >= 16384)
  {
    std::vector<float> cs(half), sn(half);
#pragma omp for schedule(static)
    for (int t = 0; t < T; ++t) {
      angles(cs.data(), sn.data(), pos[t], inv_freq);
      for (int h = 0; h < H; ++h)
        rotate_row(x + (int64_t(t) * H + h) * D, cs.data(), sn.data(), half, stride, offset);
    }
  }
}

RopeTable::RopeTable(int D, float theta) : inv_freq_(inverse_frequencies(D, theta)) {}

void RopeTable::reserve(int positions) {
  const int n = size();
  if (positions <= n) return;
  const size_t half = inv_freq_.size();
  cos_.resize(size_t(positions) * half);
  sin_.resize(size_t(positions) * half);
  for (int p = n; p < positions; ++p) angles(&cos_[size_t(p) * half], &sin_[size_t(p) * half], p, inv_freq_);
}

void RopeTable::apply(float* x, const int32_t* pos, int T, int H, RopeLayout layout) const {
  const int n = size(), half = int(inv_freq_.size()), D = 2 * half;
  for (int t = 0; t < T; ++t)
    check(pos[t] >= 0 && pos[t] < n, "rope: position {} of row {} is outside the table's [0, {})", pos[t], t, n);
  const int stride = pair_stride(layout), offset = pair_offset(layout, half);
#pragma omp parallel for schedule(static) if (int64_t(T) * H * D >= 16384)
  for (int t = 0; t < T; ++t) {
    const float* cs = &cos_[size_t(pos[t]) * size_t(half)];
    const float* sn = &sin_[size_t(pos[t]) * size_t(half)];
    for (int h = 0; h < H; ++h) rotate_row(x + (int64_t(t) * H + h) * D, cs, sn, half, stride, offset);
  }
}

}  // namespace unmask
