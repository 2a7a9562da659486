// The Linear of weights read in place (gemm.h): f16 and quantized parts, stacked, of mixed types.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/weight_copy.h"
#include "unmask/kernels/cpu.h"
#include "unmask/kernels/gemm.h"
#include "unmask/kernels/quant.h"
#include "unmask/kernels/quant_avx512.h"
#include "unmask/kernels/quant_gemm.h"
#include "unmask/kernels/quant_gemm_avx512.h"

namespace unmask {

namespace {

// Weight rows per work item of the f32/f16/bf16 parts: fixed, so the split does not depend on the thread count,
// and 64 rows of 4,096 f16 values (512 KiB) stay in L2 while the tiles of x pass.
constexpr int kLaneBlockRows = 64;

// The tree of the AVX-512 kernels' 16-lane reductions: lanes i + 8, then i + 4, then i + 2, then the two.
float reduce16(const float* l) {
  float h[8], q[4];
  for (int i = 0; i < 8; ++i) h[i] = l[i] + l[i + 8];
  for (int i = 0; i < 4; ++i) q[i] = h[i] + h[i + 4];
  return (q[0] + q[2]) + (q[1] + q[3]);
}

}  // namespace

struct Linear::PartsImpl {
  // A unit of work: output channels [r0, r1) of a part (16-row groups of quantized parts, kLaneBlockRows of the
  // others), each computed by one thread.
  struct Item {
    int r0, r1;
  };
  std::vector<int> first;                  // the first output channel of each part
  std::vector<Item> items;                 // every part's, in order
  std::vector<int> part_items;             // part j's items: [part_items[j], part_items[j + 1])
  QuantizedActs acts[2];                   // x quantized for groups of 32 (Q8_0, Q4_0) and of 256 (K-quants)
  std::vector<std::vector<float>> rows;    // per thread: a weight row converted to f32 (portable path)
  std::vector<QuantScratch> quant;         // per thread: quant_gemm_rows' scratch
  // Per part: the weights repacked (avx512::repack: every quantized type but Q2_K/Q3_K, AVX-512 only) on the
  // first call, else null: a mixture's experts are copied only once routed to.
  std::vector<WeightCopy> packed;
  bool repack = true, repacked = false;

  // Output channels [r0, r1) of out (T, ldo) for an f32/f16/bf16 part: every output dot_f32 of the row converted
  // exactly to f32 with the row of x, whatever T (AVX-512: register tiles, rows converted on the fly).
  static void lane_rows(const LinearPart& p, int IC, const float* x, float* out, int T, int ldo, int r0, int r1,
                        std::vector<float>& buf) {
    const size_t rb = row_bytes(p.dtype, IC);
    const auto* base = static_cast<const uint8_t*>(p.data);
    if (cpu_features().avx512_int8())
      return avx512::lane_gemm(p.dtype, base + size_t(r0) * rb, rb, r1 - r0, x, IC, T, IC, out + r0, ldo);
    buf.resize(size_t(IC));
    for (int r = r0; r < r1; ++r) {
      to_f32(p.dtype, base + size_t(r) * rb, buf.data(), IC);
      for (int t = 0; t < T; ++t) out[int64_t(t) * ldo + r] = dot_f32(buf.data(), x + int64_t(t) * IC, IC);
    }
  }
};

void Linear::init_parts(int IC, bool repack) {
  check(!parts_.empty() && IC > 0, "Linear: {} parts of {} columns, expected at least one part and IC > 0",
        parts_.size(), IC);
  parts_impl_ = std::make_shared<PartsImpl>();
  parts_impl_->repack = repack;
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
    parts_impl_->packed.emplace_back();
    const int step = is_quant_dtype(p.dtype) ? kQuantGemmRows : kLaneBlockRows;
    parts_impl_->part_items.push_back(int(parts_impl_->items.size()));
    for (int r0 = 0; r0 < p.rows; r0 += step) parts_impl_->items.push_back({r0, std::min(p.rows, r0 + step)});
  }
  parts_impl_->part_items.push_back(int(parts_impl_->items.size()));
  w_ = parts_[0].data, dtype_ = parts_[0].dtype, oc_ = oc, ic_ = IC;
}

void Linear::repack_parts() const {
  PartsImpl& m = *parts_impl_;
  m.repacked = true;
  if (!m.repack || !cpu_features().avx512_int8()) return;
  for (size_t j = 0; j < parts_.size(); ++j) {
    const LinearPart& p = parts_[j];
    const size_t block = avx512::packed_block_bytes(p.dtype);
    if (block == 0) continue;
    const int groups = (p.rows + kQuantGemmRows - 1) / kQuantGemmRows, nb = ic_ / dtype_info(p.dtype).block_size;
    m.packed[j] = weight_copy(size_t(groups) * size_t(nb) * block, "Linear: repacked weights");
    avx512::repack(p.dtype, static_cast<const uint8_t*>(p.data), row_bytes(p.dtype, ic_), p.rows, nb,
                   static_cast<uint8_t*>(m.packed[j].get()));
  }
}

void Linear::release_parts() {
  PartsImpl& m = *parts_impl_;
  m.acts[0] = QuantizedActs(), m.acts[1] = QuantizedActs();
  std::vector<QuantScratch>().swap(m.quant);
  std::vector<std::vector<float>>().swap(m.rows);
}

void Linear::forward_parts(float* out, const float* x, int T, const float* bias) const {
  check(T >= 0, "Linear::forward: T = {}, expected >= 0", T);
  PartsImpl& m = *parts_impl_;
  const bool fast = cpu_features().avx512_int8();
  if (fast && !m.repacked) repack_parts();
  bool quantized[2] = {false, false};  // x quantized once per call per activation group, before the GEMMs
  for (const LinearPart& p : parts_) {
    if (!is_quant_dtype(p.dtype)) continue;
    const int g = act_group(p.dtype) == 32 ? 0 : 1;
    if (!quantized[g]) quantize_acts(p.dtype, x, T, ic_, m.acts[g]), quantized[g] = true;
  }
  // Every part in one OpenMP region (a region per part cost a fork and a join each: 3 for q/k/v per layer), each
  // part's items split in contiguous halves (a thread reading every other group of rows was 2x slower at decode:
  // one stream per thread is what the prefetchers follow), no barrier between the parts.
  m.rows.resize(size_t(omp_get_max_threads())), m.quant.resize(size_t(omp_get_max_threads()));
#pragma omp parallel
  {
    const size_t th = size_t(omp_get_thread_num());
    for (size_t j = 0; j < parts_.size(); ++j) {
      const LinearPart& p = parts_[j];
      float* dst = out + m.first[j];
      const int i0 = m.part_items[j], i1 = m.part_items[j + 1];
#pragma omp for schedule(static) nowait
      for (int i = i0; i < i1; ++i) {
        const PartsImpl::Item& it = m.items[size_t(i)];
        const QuantizedActs& a = m.acts[is_quant_dtype(p.dtype) && act_group(p.dtype) == 32 ? 0 : 1];
        if (m.packed[j] && fast) {
          const size_t group = size_t(ic_ / dtype_info(p.dtype).block_size) * avx512::packed_block_bytes(p.dtype);
          const auto* panel = static_cast<const uint8_t*>(m.packed[j].get()) + size_t(it.r0 / kQuantGemmRows) * group;
          avx512::packed_group(p.dtype, panel, it.r1 - it.r0, a, dst + it.r0, oc_);
        } else if (is_quant_dtype(p.dtype)) quant_gemm_rows(p.dtype, p.data, it.r0, it.r1, a, dst, oc_, m.quant[th]);
        else PartsImpl::lane_rows(p, ic_, x, dst, T, oc_, it.r0, it.r1, m.rows[th]);
      }
    }
  }
  if (bias)
    for (int t = 0; t < T; ++t)
      for (int o = 0; o < oc_; ++o) out[int64_t(t) * oc_ + o] += bias[o];
}

float dot_f32(const float* a, const float* b, int n) {
  if (cpu_features().avx512_int8()) return avx512::dot_f32(a, b, n);
  float lanes[16] = {};  // the AVX-512 kernel's FMAs, i mod 16 (zeros past n, as its masked loads)
  for (int i0 = 0; i0 < n; i0 += 16)
    for (int j = 0; j < 16; ++j)
      lanes[j] = i0 + j < n ? std::fma(a[i0 + j], b[i0 + j], lanes[j]) : std::fma(0.0f, 0.0f, lanes[j]);
  return reduce16(lanes);
}

}  // namespace unmask
