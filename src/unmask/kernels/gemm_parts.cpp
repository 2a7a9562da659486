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

// Weight rows per panel: 64 (two 32-column blocks of the packed tiles), a (64, kQuantPanelK) f32 chunk of 256 KiB
// staying in L2 while the tiles sweep x. Fixed, so the split of the work does not depend on the thread count.
constexpr int kPanelRows = 64;

}  // namespace

struct Linear::PartsImpl {
  std::vector<int> first;                  // the first output channel of each part
  QuantizedActs acts[2];                   // x quantized for groups of 32 (Q8_0, Q4_0) and of 256 (K-quants)
  std::vector<std::vector<float>> panels;  // per thread: (kPanelRows, kc) dequantized rows, then the same packed

  // Output channels [0, p.rows) of out (T, ldo) from int8 row dots; rows split across the threads.
  static void row_dots(const LinearPart& p, int IC, const QuantizedActs& a, float* out, int T, int ldo) {
    const size_t rb = row_bytes(p.dtype, IC);
    const auto* base = static_cast<const uint8_t*>(p.data);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < p.rows; ++o)
      for (int t = 0; t < T; ++t) out[int64_t(t) * ldo + o] = dot_acts(p.dtype, base + size_t(o) * rb, a, t);
  }

  // Output channels [0, p.rows) of out (T, ldo) for f32/f16/bf16 parts and few rows: each row converted to f32
  // into per-thread scratch (f16 on AVX-512: on the fly) and dotted with the T rows of x (16 lane sums); rows split
  // across the threads.
  void row_dots_f32(const LinearPart& p, int IC, const float* x, float* out, int T, int ldo) {
    const size_t rb = row_bytes(p.dtype, IC);
    const auto* base = static_cast<const uint8_t*>(p.data);
    panels.resize(size_t(omp_get_max_threads()));
#pragma omp parallel
    {
      std::vector<float>& buf = panels[size_t(omp_get_thread_num())];
      buf.resize(std::max(buf.size(), size_t(IC)));
      const bool f16_direct = p.dtype == DType::F16 && cpu_features().avx512_int8();  // no conversion pass
#pragma omp for schedule(static)
      for (int o = 0; o < p.rows; ++o) {
        if (f16_direct) {
          const auto* row = reinterpret_cast<const uint16_t*>(base + size_t(o) * rb);
          for (int t = 0; t < T; ++t) out[int64_t(t) * ldo + o] = avx512::dot_f16_f32(row, x + int64_t(t) * IC, IC);
          continue;
        }
        row_to_f32(p.dtype, base + size_t(o) * rb, buf.data(), IC);
        for (int t = 0; t < T; ++t) out[int64_t(t) * ldo + o] = dot_f32(buf.data(), x + int64_t(t) * IC, IC);
      }
    }
  }

  // Output channels [0, p.rows) of out (T, ldo) = x (T, IC) · (dequantized panels of p)ᵀ; panels split across the
  // threads, each dequantized and multiplied a chunk of kQuantPanelK columns at a time (summed in chunk order).
  void panel_gemm(const LinearPart& p, int IC, const float* x, float* out, int T, int ldo) {
    const size_t rb = row_bytes(p.dtype, IC);
    const auto* base = static_cast<const uint8_t*>(p.data);
    const int n_panels = (p.rows + kPanelRows - 1) / kPanelRows, kc = std::min(IC, kQuantPanelK);
    panels.resize(size_t(omp_get_max_threads()));
#pragma omp parallel
    {
      std::vector<float>& buf = panels[size_t(omp_get_thread_num())];
      buf.resize(std::max(buf.size(), 2 * size_t(kPanelRows) * size_t(kc)));
      float* rows = buf.data();
      float* packed = buf.data() + size_t(kPanelRows) * size_t(kc);
#pragma omp for schedule(static)
      for (int i = 0; i < n_panels; ++i) {
        const int r0 = i * kPanelRows, nr = std::min(kPanelRows, p.rows - r0);
        for (int k0 = 0; k0 < IC; k0 += kc) {
          const int k = std::min(kc, IC - k0);
          const size_t at = row_bytes(p.dtype, k0);
          for (int r = 0; r < nr; ++r) row_to_f32(p.dtype, base + size_t(r0 + r) * rb + at, rows + int64_t(r) * k, k);
          pack_f32_panel(rows, nr, k, packed);
          gemm_packed_f32(x + k0, IC, T, packed, nr, k, out + r0, ldo, k0 > 0);
        }
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

void Linear::release_parts() {
  PartsImpl& m = *parts_impl_;
  m.acts[0] = QuantizedActs(), m.acts[1] = QuantizedActs();
  std::vector<std::vector<float>>().swap(m.panels);
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
    } else if (T <= kQuantRowsMatvec) {
      m.row_dots_f32(p, ic_, x, dst, T, oc_);
    } else {
      m.panel_gemm(p, ic_, x, dst, T, oc_);
    }
  }
  if (bias)
    for (int t = 0; t < T; ++t)
      for (int o = 0; o < oc_; ++o) out[int64_t(t) * oc_ + o] += bias[o];
}

float dot_f32(const float* a, const float* b, int n) {
  if (cpu_features().avx512_int8()) return avx512::dot_f32(a, b, n);
  float lanes[16] = {};  // the AVX-512 kernel's partial sums, i mod 16
  for (int i0 = 0; i0 < n; i0 += 16)
    for (int j = 0; j < 16 && i0 + j < n; ++j) lanes[j] += a[i0 + j] * b[i0 + j];
  float s = 0;
  for (float l : lanes) s += l;
  return s;
}

void pack_f32_panel(const float* w, int N, int K, float* packed) {
  for (int j = 0; j < N; j += 32)
    for (int k = 0; k < K; ++k)
      for (int n = 0; n < 32; ++n)
        packed[int64_t(j) * K + int64_t(k) * 32 + n] = j + n < N ? w[int64_t(j + n) * K + k] : 0.0f;
}

void gemm_packed_f32(const float* x, int64_t ldx, int T, const float* packed, int N, int K, float* out, int64_t ldo,
                     bool accumulate) {
  if (cpu_features().avx512_int8()) return avx512::gemm_packed_f32(x, ldx, T, packed, N, K, out, ldo, accumulate);
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < N; ++n) {
      const float* b = packed + int64_t(n / 32) * 32 * K + n % 32;
      float s = 0;
      for (int k = 0; k < K; ++k) s += x[t * ldx + k] * b[int64_t(k) * 32];
      float& o = out[t * ldo + n];
      o = accumulate ? o + s : s;
    }
}

}  // namespace unmask
