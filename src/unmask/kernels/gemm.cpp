#include "unmask/kernels/gemm.h"

#include <omp.h>

#include <dnnl.hpp>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/weight_copy.h"
#include "unmask/kernels/dnnl_util.h"

#if defined(__AVX512F__)
// g++ 12 reports its own _mm512_undefined_* placeholders as maybe-uninitialized (GCC PR105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace unmask {

// One CPU engine and stream for the process (oneDNN objects are thread-safe to share for execution).
DnnlRuntime& dnnl_runtime() {
  static DnnlRuntime r;
  return r;
}

namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

DnnlRuntime& runtime() { return dnnl_runtime(); }

// x (n) f32 -> dst (n) bf16, round to nearest even, NaN kept quiet: the same bits as f32_to_bf16 (dtype.h), subnormals
// included (unlike vcvtne2ps2bf16, which flushes them).
void to_bf16(uint16_t* dst, const float* x, int64_t n) {
#if defined(__AVX512F__)
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i quiet = _mm512_set1_epi32(0x40);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 k = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1u);
    __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(k, x + i));
    __m512i hi = _mm512_srli_epi32(u, 16);
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(hi, one))), 16);
    __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, abs_mask), inf);
    r = _mm512_mask_or_epi32(r, nan, hi, quiet);
    _mm512_mask_cvtepi32_storeu_epi16(dst + i, k, r);
  }
#else
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_bf16(x[i]);
#endif
}

// The calling thread's scratch for oneDNN's primitives (user scratchpad mode), 64-byte aligned, grow-only until
// release_kernel_cache() (oneDNN's own would stay at its largest size as long as any primitive lives).
thread_local std::vector<float> t_gemm_scratch;
void* gemm_scratch(size_t bytes) {
  if (t_gemm_scratch.size() < bytes / sizeof(float) + 16) t_gemm_scratch.resize(bytes / sizeof(float) + 16);
  const auto at = reinterpret_cast<uintptr_t>(t_gemm_scratch.data());
  return t_gemm_scratch.data() + ((64 - at % 64) % 64) / sizeof(float);
}

// dst[off0[k] + off1[n]] = w[n][k] over the rows [n0, n1) of w, 16 columns at a time (a tile of rows × 16 values in
// L1 while it is scattered). Where 16 rows land on 16 consecutive elements (f32: BA16a64b) or on every other one with
// the next column between them (bf16: BA16a64b2a), one AVX-512 gather moves them; the rest go one by one.
template <typename E>
void scatter_rows(const E* w, int K, const BlockedOffsets& o, int n0, int n1, E* dst) {
  const auto& off0 = o.off0;
  const auto& off1 = o.off1;
#if defined(__AVX512F__)
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(K));  // row j of a run of 16: element j · K
#endif
  for (int k0 = 0; k0 < K; k0 += 16) {
    const int k1 = std::min(K, k0 + 16);
    for (int n = n0; n < n1;) {
#if defined(__AVX512F__)
      constexpr int step = sizeof(E) == 4 ? 1 : 2;  // elements between rows n and n + 1 in the packed run
      const bool run = n + 16 <= n1 && off1[size_t(n + 15)] - off1[size_t(n)] == 15 * step;
      if (run && sizeof(E) == 4) {
        for (int k = k0; k < k1; ++k)
          _mm512_storeu_ps(dst + off0[size_t(k)] + off1[size_t(n)],
                           _mm512_i32gather_ps(rows, w + int64_t(n) * K + k, 4));
        n += 16;
        continue;
      }
      if (run && sizeof(E) == 2 && (k1 - k0) % 2 == 0 && k0 % 2 == 0) {
        bool pairs = true;  // column k + 1 right after column k in the packed run
        for (int k = k0; k < k1 && pairs; k += 2) pairs = off0[size_t(k + 1)] == off0[size_t(k)] + 1;
        if (pairs) {
          for (int k = k0; k < k1; k += 2)  // (w[n + j][k], w[n + j][k + 1]) as one 32-bit element, j = 0..15
            _mm512_storeu_si512(dst + off0[size_t(k)] + off1[size_t(n)],
                                _mm512_i32gather_epi32(rows, w + int64_t(n) * K + k, 2));
          n += 16;
          continue;
        }
      }
#endif
      for (int k = k0; k < k1; ++k) dst[off0[size_t(k)] + off1[size_t(n)]] = w[int64_t(n) * K + k];
      ++n;
    }
  }
}

}  // namespace

BlockedOffsets blocked_offsets(const memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  BlockedOffsets r;
  if (d.ndims != 2 || d.format_kind != dnnl_blocked || d.offset0 != 0) return r;
  const auto& b = d.format_desc.blocking;
  for (int dim = 0; dim < 2; ++dim) {
    int64_t outer_block = 1;  // the product of the dimension's inner blocks
    for (int j = 0; j < b.inner_nblks; ++j)
      if (b.inner_idxs[j] == dim) outer_block *= b.inner_blks[j];
    std::vector<int64_t>& off = dim == 0 ? r.off0 : r.off1;
    off.resize(size_t(d.padded_dims[dim]));
    for (int64_t i = 0; i < d.padded_dims[dim]; ++i) {
      int64_t o = i / outer_block * b.strides[dim], stride = 1, div = 1;
      for (int j = b.inner_nblks - 1; j >= 0; --j) {  // innermost block first: stride 1
        if (b.inner_idxs[j] == dim) o += i / div % b.inner_blks[j] * stride, div *= b.inner_blks[j];
        stride *= b.inner_blks[j];
      }
      off[size_t(i)] = o;
    }
  }
  return r;
}

bool pack_blocked(const void* w, int N, int K, int bytes, const memory::desc& md, void* dst) {
  const BlockedOffsets o = blocked_offsets(md);
  if (o.empty() || (bytes != 4 && bytes != 2) || md.data.dims[0] != K || md.data.dims[1] != N) return false;
  if (md.data.padded_dims[0] != K || md.data.padded_dims[1] != N) std::memset(dst, 0, md.get_size());
  constexpr int kRows = 64;
#pragma omp parallel for schedule(static)
  for (int n0 = 0; n0 < N; n0 += kRows) {
    const int n1 = std::min(N, n0 + kRows);
    if (bytes == 4) scatter_rows(static_cast<const float*>(w), K, o, n0, n1, static_cast<float*>(dst));
    else scatter_rows(static_cast<const uint16_t*>(w), K, o, n0, n1, static_cast<uint16_t*>(dst));
  }
  return true;
}

struct Linear::Impl {
  struct Plan {
    dnnl::matmul prim;
    memory src, dst, bias, scratch;  // user memories; their handles are set per call
    memory* weights = nullptr;  // the packed copy this plan reads (an element of packed)
    int64_t uses = 0;           // calls since the last release()
    std::unordered_map<int, memory> args;  // built once: memories are shared handles
  };
  dt wdt = dt::f32;
  memory user_w;                                           // (IC, OC) view of W (OC, IC): strides {1, IC}
  // A packed copy of W in one layout, in memory of its own (weight_copy).
  struct Packed {
    memory::desc md;
    WeightCopy buf;
    std::unique_ptr<memory> mem;
  };
  std::vector<Packed> packed;  // one per distinct layout
  std::map<std::pair<int, bool>, Plan> plans;              // keyed by (T, has bias)
  std::vector<uint16_t> x_bf16;                            // scratch (T, IC) for bf16 activations
  std::vector<float> x_pad, out_pad;                       // scratch when T is padded to a planned row count

  // Fills mem (the packed layout) from W: our own blocked pack where the layout is blocked (oneDNN's reorder of a
  // transposed source ran at ~0.2 GB/s here: most of a first pass), oneDNN's reorder otherwise.
  void pack(memory& mem) {
    const memory::desc& md = user_w.get_desc();
    const int K = int(md.data.dims[0]), N = int(md.data.dims[1]);
    if (pack_blocked(user_w.get_data_handle(), N, K, wdt == dt::bf16 ? 2 : 4, mem.get_desc(), mem.get_data_handle()))
      return;
    auto& rt = runtime();
    dnnl::reorder(user_w, mem).execute(rt.strm, user_w, mem);
    rt.strm.wait();
  }

  memory* packed_for(const memory::desc& want) {
    for (auto& p : packed)
      if (p.md == want) return p.mem.get();
    Packed p{want, weight_copy(want.get_size(), "Linear: packing"), nullptr};
    p.mem = std::make_unique<memory>(want, runtime().eng, p.buf.get());
    pack(*p.mem);
    packed.push_back(std::move(p));
    return packed.back().mem.get();
  }

  Plan& plan(int T, int OC, int IC, bool has_bias) {
    auto it = plans.find({T, has_bias});
    if (it != plans.end()) return it->second;
    auto& rt = runtime();
    memory::desc src_md({T, IC}, wdt, tag::ab), dst_md({T, OC}, dt::f32, tag::ab), b_md({1, OC}, dt::f32, tag::ab);
    memory::desc w_md({IC, OC}, wdt, tag::any);
    auto d = has_bias ? dnnl::matmul::desc(src_md, w_md, b_md, dst_md) : dnnl::matmul::desc(src_md, w_md, dst_md);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // gemm_scratch(): ours to give back
    dnnl::matmul::primitive_desc pd(d, attr, rt.eng);
    Plan p;
    p.prim = dnnl::matmul(pd);
    p.weights = packed_for(pd.weights_desc());
    p.src = memory(src_md, rt.eng, DNNL_MEMORY_NONE);
    p.dst = memory(dst_md, rt.eng, DNNL_MEMORY_NONE);
    p.scratch = memory(pd.scratchpad_desc(), rt.eng, DNNL_MEMORY_NONE);
    p.args = {{DNNL_ARG_SRC, p.src}, {DNNL_ARG_WEIGHTS, *p.weights}, {DNNL_ARG_DST, p.dst},
              {DNNL_ARG_SCRATCHPAD, p.scratch}};
    if (has_bias) {
      p.bias = memory(b_md, rt.eng, DNNL_MEMORY_NONE);
      p.args.emplace(DNNL_ARG_BIAS, p.bias);
    }
    return plans.emplace(std::make_pair(T, has_bias), std::move(p)).first->second;
  }
};

Linear::Linear() = default;
Linear::~Linear() = default;
Linear::Linear(Linear&&) noexcept = default;
Linear& Linear::operator=(Linear&&) noexcept = default;

Linear::Linear(std::vector<LinearPart> parts, int IC, bool repack) : parts_(std::move(parts)) {
  init_parts(IC, repack);
}

Linear::Linear(const void* w, DType dtype, int OC, int IC) : w_(w), dtype_(dtype), oc_(OC), ic_(IC) {
  check(OC > 0 && IC > 0 && w != nullptr, "Linear: weight ({}, {}) at {} is empty or null", OC, IC, w);
  if (dtype != DType::F32 && dtype != DType::BF16) {  // read in place (gemm_parts.cpp)
    parts_ = {{w, dtype, OC}};
    init_parts(IC, true);
    return;
  }
  impl_ = std::make_unique<Impl>();
  impl_->wdt = dtype == DType::BF16 ? dt::bf16 : dt::f32;
  memory::desc user_md({IC, OC}, impl_->wdt, memory::dims{1, IC});
  impl_->user_w = memory(user_md, runtime().eng, const_cast<void*>(w));
}

// x (T, IC), bias (OC) or null -> out (T, OC). The primitive runs on gemm_rows(T) rows, the extra ones zero.
void Linear::forward(float* out, const float* x, int T, const float* bias) const {
  if (parts_impl_) return forward_parts(out, x, T, bias);
  check(impl_ != nullptr, "Linear::forward: this Linear holds no weight");
  check(T >= 0, "Linear::forward: T = {}, expected >= 0", T);
  if (T == 0) return;
  const int Tp = gemm_rows(T);
  Impl::Plan& p = impl_->plan(Tp, oc_, ic_, bias != nullptr);
  ++p.uses;
  const void* src = x;
  if (dtype_ == DType::BF16) {
    auto& buf = impl_->x_bf16;
    buf.resize(size_t(Tp) * ic_);
#pragma omp parallel for schedule(static) if (int64_t(T) * ic_ >= 65536)
    for (int t = 0; t < T; ++t) to_bf16(buf.data() + int64_t(t) * ic_, x + int64_t(t) * ic_, ic_);
    std::fill(buf.begin() + int64_t(T) * ic_, buf.begin() + int64_t(Tp) * ic_, uint16_t(0));
    src = buf.data();
  } else if (Tp != T) {
    auto& buf = impl_->x_pad;
    buf.assign(size_t(Tp) * ic_, 0.0f);
    std::copy_n(x, size_t(T) * ic_, buf.data());
    src = buf.data();
  }
  float* dst = out;
  if (Tp != T) dst = (impl_->out_pad.resize(size_t(Tp) * oc_), impl_->out_pad.data());
  p.src.set_data_handle(const_cast<void*>(src));
  p.dst.set_data_handle(dst);
  if (bias) p.bias.set_data_handle(const_cast<float*>(bias));
  p.scratch.set_data_handle(gemm_scratch(p.scratch.get_desc().get_size()));
  auto& rt = runtime();
  p.prim.execute(rt.strm, p.args);
  rt.strm.wait();
  if (dst != out) std::copy_n(dst, size_t(T) * oc_, out);
}

void Linear::repack() {
  if (parts_impl_) return repack_parts();
  for (auto& p : impl_->packed) impl_->pack(*p.mem);
}

void Linear::release(int keep) {
  if (parts_impl_) return release_parts();
  if (!impl_) return;
  Impl& m = *impl_;
  std::vector<std::pair<int64_t, std::pair<int, bool>>> by_use;  // (uses, key), most used first
  for (const auto& [key, p] : m.plans) by_use.emplace_back(p.uses, key);
  std::sort(by_use.begin(), by_use.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = size_t(std::max(keep, 0)); i < by_use.size(); ++i) m.plans.erase(by_use[i].second);
  std::erase_if(m.packed, [&](const Impl::Packed& p) {
    return std::none_of(m.plans.begin(), m.plans.end(),
                        [&](const auto& kp) { return kp.second.weights == p.mem.get(); });
  });
  for (auto& [key, p] : m.plans) p.uses = 0;
  std::vector<uint16_t>().swap(m.x_bf16);  // (`= {}` would keep the capacity)
  std::vector<float>().swap(m.x_pad);
  std::vector<float>().swap(m.out_pad);
}

void release_kernel_cache() {
  std::vector<float>().swap(t_gemm_scratch);
  const int capacity = dnnl::get_primitive_cache_capacity();
  dnnl::set_primitive_cache_capacity(0);
  dnnl::set_primitive_cache_capacity(capacity);
}

void set_kernel_threads(int n) {
  check(n > 0, "set_kernel_threads: n = {}, expected > 0", n);
  omp_set_num_threads(n);
}

}  // namespace unmask
