#include "unmask/kernels/gemm.h"

#include <omp.h>

#include <dnnl.hpp>
#include <algorithm>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "unmask/base/error.h"
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

}  // namespace

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
  std::vector<std::pair<memory::desc, std::unique_ptr<memory>>> packed;  // one per distinct layout
  std::map<std::pair<int, bool>, Plan> plans;              // keyed by (T, has bias)
  std::vector<uint16_t> x_bf16;                            // scratch (T, IC) for bf16 activations
  std::vector<float> x_pad, out_pad;                       // scratch when T is padded to a planned row count

  memory* packed_for(const memory::desc& want) {
    for (auto& [md, mem] : packed)
      if (md == want) return mem.get();
    auto& rt = runtime();
    auto mem = std::make_unique<memory>(want, rt.eng);
    dnnl::reorder(user_w, *mem).execute(rt.strm, user_w, *mem);
    rt.strm.wait();
    packed.emplace_back(want, std::move(mem));
    return packed.back().second.get();
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

Linear::Linear(std::vector<LinearPart> parts, int IC) : parts_(std::move(parts)) { init_parts(IC); }

Linear::Linear(const void* w, DType dtype, int OC, int IC) : w_(w), dtype_(dtype), oc_(OC), ic_(IC) {
  check(OC > 0 && IC > 0 && w != nullptr, "Linear: weight ({}, {}) at {} is empty or null", OC, IC, w);
  if (dtype != DType::F32 && dtype != DType::BF16) {  // read in place (gemm_parts.cpp)
    parts_ = {{w, dtype, OC}};
    init_parts(IC);
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
  if (!impl_) return;
  auto& rt = runtime();
  for (auto& [md, mem] : impl_->packed) dnnl::reorder(impl_->user_w, *mem).execute(rt.strm, impl_->user_w, *mem);
  rt.strm.wait();
}

void Linear::release(int keep) {
  if (parts_impl_) return release_parts();
  if (!impl_) return;
  Impl& m = *impl_;
  std::vector<std::pair<int64_t, std::pair<int, bool>>> by_use;  // (uses, key), most used first
  for (const auto& [key, p] : m.plans) by_use.emplace_back(p.uses, key);
  std::sort(by_use.begin(), by_use.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = size_t(std::max(keep, 0)); i < by_use.size(); ++i) m.plans.erase(by_use[i].second);
  std::erase_if(m.packed, [&](const auto& entry) {
    const memory* mem = entry.second.get();
    return std::none_of(m.plans.begin(), m.plans.end(), [&](const auto& kp) { return kp.second.weights == mem; });
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
