// The Linear of weights read in place (gemm.h): f16 and quantized parts, stacked, of mixed types.
#include <omp.h>

#include <algorithm>

#include "unmask/base/error.h"
#include "unmask/kernels/cpu.h"
#include "unmask/kernels/gemm.h"
#include "unmask/kernels/quant.h"
#include "unmask/kernels/quant_avx512.h"

namespace unmask {

namespace {

// Weight rows dequantized per panel: about 128 KiB of f32 (L2-resident while the tiles sweep it), a multiple of
// the 4-row tile. Depends on IC only, so the split of the work does not depend on the thread count.
int panel_rows(int IC) { return std::clamp(32768 / IC / 4 * 4, 4, 64); }

}  // namespace

struct Linear::PartsImpl {
  std::vector<int> first;                  // the first output channel of each part
  QuantizedActs acts[2];                   // x quantized for groups of 32 (Q8_0, Q4_0) and of 256 (K-quants)
  std::vector<std::vector<float>> panels;  // per thread: (panel_rows, IC) dequantized weight rows

  // Output channels [0, p.rows) of out (T, ldo) from int8 row dots; rows split across the threads.
  static void row_dots(const LinearPart& p, int IC, const QuantizedActs& a, float* out, int T, int ldo) {
    const size_t rb = row_bytes(p.dtype, IC);
    const auto* base = static_cast<const uint8_t*>(p.data);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < p.rows; ++o)
      for (int t = 0; t < T; ++t) out[int64_t(t) * ldo + o] = dot_acts(p.dtype, base + size_t(o) * rb, a, t);
  }

  // Output channels [0, p.rows) of out (T, ldo) = x (T, IC) · (dequantized panels of p)ᵀ; panels split across the
  // threads.
  void panel_gemm(const LinearPart& p, int IC, const float* x, float* out, int T, int ldo) {
    const size_t rb = row_bytes(p.dtype, IC);
    const auto* base = static_cast<const uint8_t*>(p.data);
    const int np = panel_rows(IC), n_panels = (p.rows + np - 1) / np;
    panels.resize(size_t(omp_get_max_threads()));
#pragma omp parallel
    {
      std::vector<float>& buf = panels[size_t(omp_get_thread_num())];
      buf.resize(size_t(np) * size_t(IC));
#pragma omp for schedule(static)
      for (int i = 0; i < n_panels; ++i) {
        const int r0 = i * np, nr = std::min(np, p.rows - r0);
        for (int r = 0; r < nr; ++r) row_to_f32(p.dtype, base + size_t(r0 + r) * rb, buf.data() + int64_t(r) * IC, IC);
        gemm_nt_f32(x, T, buf.data(), nr, IC, out + r0, ldo);
      }
    }
  }
};

void Linear::init_parts(int IC) {
  check(!parts_.empty() && IC > 0, "Linear: {} parts of {} columns, expected at least one part and IC > 0",
        parts_.size(), IC);
  parts_impl_ = std::make_shared<PartsImpl>();
  int oc = 0;
  for (size_t i = 0; i < parts_.size(); ++i) {
    const LinearPart& p = parts_[i];
    check(p.data != nullptr && p.rows > 0, "Linear: part {} ({} rows of {}) is empty or null", i, p.rows,
          dtype_name(p.dtype));
    const int bs = dtype_info(p.dtype).block_size;
    check(IC % bs == 0, "Linear: part {} of type {} has rows of {} values, not whole blocks of {}", i,
          dtype_name(p.dtype), IC, bs);
    parts_impl_->first.push_back(oc);
    oc += p.rows;
  }
  w_ = parts_[0].data, dtype_ = parts_[0].dtype, oc_ = oc, ic_ = IC;
}

void Linear::forward_parts(float* out, const float* x, int T, const float* bias) const {
  check(T >= 0, "Linear::forward: T = {}, expected >= 0", T);
  PartsImpl& m = *parts_impl_;
  bool quantized[2] = {false, false};  // x quantized this call, per activation group
  for (size_t i = 0; i < parts_.size(); ++i) {
    const LinearPart& p = parts_[i];
    float* dst = out + m.first[i];
    if (is_quant_dtype(p.dtype) && T <= kQuantRowsMatvec) {
      const int g = act_group(p.dtype) == 32 ? 0 : 1;
      if (!quantized[g]) quantize_acts(p.dtype, x, T, ic_, m.acts[g]), quantized[g] = true;
      PartsImpl::row_dots(p, ic_, m.acts[g], dst, T, oc_);
    } else {
      m.panel_gemm(p, ic_, x, dst, T, oc_);
    }
  }
  if (bias)
    for (int t = 0; t < T; ++t)
      for (int o = 0; o < oc_; ++o) out[int64_t(t) * oc_ + o] += bias[o];
}

void gemm_nt_f32(const float* x, int T, const float* w, int N, int K, float* out, int64_t ldo) {
  if (cpu_features().avx512_int8()) return avx512::gemm_nt_f32(x, T, w, N, K, out, ldo);
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < N; ++n) {
      const float* a = x + int64_t(t) * K;
      const float* b = w + int64_t(n) * K;
      float lanes[16] = {};  // the AVX-512 kernel's partial sums, k mod 16
      for (int k0 = 0; k0 < K; k0 += 16)
        for (int j = 0; j < 16 && k0 + j < K; ++j) lanes[j] += a[k0 + j] * b[k0 + j];
      float s = 0;
      for (float l : lanes) s += l;
      out[int64_t(t) * ldo + n] = s;
    }
}

}  // namespace unmask
