// Backward of a linear layer out (T, OC) = x (T, IC) · Wᵀ + b, f32, through oneDNN matmul:
//   dx (T, IC)  = dout (T, OC) · W (OC, IC)     src dout 'ab', weights W 'ab' (K = OC, N = IC): no reorder, since
//                                               W changes every training step
//   dw (OC, IC) += doutᵀ (OC, T) · x (T, IC)    src dout viewed transposed through strides {1, OC}, weights x 'ab',
//                                               accumulated into dw by the sum post-op
//   db (OC)     += Σ_t dout                      column sums, split by column chunks, rows added in order
// Primitives are built once per shape (T, OC, IC) and kept in a process-wide cache (guarded by a mutex; oneDNN
// primitives may be executed from several threads at once).

#include <algorithm>
#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <tuple>

#include "unmask/base/error.h"
#include "unmask/kernels/backward.h"

namespace unmask {

namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

constexpr int kColChunk = 256;  // columns per work item of the bias column sum

struct Runtime {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
};
Runtime& runtime() {
  static Runtime r;
  return r;
}

struct Plans {
  dnnl::matmul dx, dw;
};

// dx: (T, OC) · (OC, IC) -> (T, IC); dw: (OC, T) [strided view of dout] · (T, IC) -> (OC, IC), dst += result.
Plans make_plans(int T, int OC, int IC) {
  auto& rt = runtime();
  const memory::desc dout_md({T, OC}, dt::f32, tag::ab), w_md({OC, IC}, dt::f32, tag::ab);
  const memory::desc dx_md({T, IC}, dt::f32, tag::ab);
  const memory::desc doutT_md({OC, T}, dt::f32, memory::dims{1, OC}), x_md({T, IC}, dt::f32, tag::ab);
  const memory::desc dw_md({OC, IC}, dt::f32, tag::ab);
  dnnl::post_ops sum;
  sum.append_sum(1.0f);
  dnnl::primitive_attr acc;
  acc.set_post_ops(sum);
  Plans p;
  p.dx = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(dout_md, w_md, dx_md), rt.eng));
  p.dw = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(doutT_md, x_md, dw_md), acc, rt.eng));
  return p;
}

const Plans& plans_for(int T, int OC, int IC) {
  static std::mutex mu;
  static std::map<std::tuple<int, int, int>, Plans> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(T, OC, IC);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, make_plans(T, OC, IC)).first;
  return it->second;
}

void run(const dnnl::matmul& prim, const memory::desc& a_md, const void* a, const memory::desc& b_md,
         const void* b, const memory::desc& c_md, void* c) {
  auto& rt = runtime();
  memory am(a_md, rt.eng, const_cast<void*>(a)), bm(b_md, rt.eng, const_cast<void*>(b)), cm(c_md, rt.eng, c);
  prim.execute(rt.strm, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  rt.strm.wait();
}

// db (OC) += Σ_t dout (T, OC): each column chunk adds its rows in order t = 0, 1, …
void bias_backward(float* db, const float* dout, int T, int OC) {
  const int chunks = (OC + kColChunk - 1) / kColChunk;
#pragma omp parallel for schedule(static) if (chunks > 1 && int64_t(T) * OC >= 65536)
  for (int ch = 0; ch < chunks; ++ch) {
    const int o0 = ch * kColChunk, n = std::min(OC, o0 + kColChunk) - o0;
    float acc[kColChunk] = {};
    for (int t = 0; t < T; ++t) {
      const float* g = dout + int64_t(t) * OC + o0;
#pragma omp simd
      for (int o = 0; o < n; ++o) acc[o] += g[o];
    }
    for (int o = 0; o < n; ++o) db[o0 + o] += acc[o];
  }
}

}  // namespace

// dout (T, OC), x (T, IC), w (OC, IC) -> dx (T, IC) = (if not null), dw (OC, IC) +=, db (OC) += (if not null).
void linear_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w, int T,
                     int OC, int IC) {
  check(T >= 0 && OC > 0 && IC > 0, "linear_backward: T {} OC {} IC {}; expected T >= 0 and OC, IC > 0", T, OC, IC);
  check(dw != nullptr && dout != nullptr && x != nullptr && (dx == nullptr || w != nullptr),
        "linear_backward: dw, dout and x must not be null, nor w when dx is wanted");
  if (T == 0) return;
  const Plans& p = plans_for(T, OC, IC);
  const memory::desc dout_md({T, OC}, dt::f32, tag::ab), w_md({OC, IC}, dt::f32, tag::ab);
  const memory::desc dx_md({T, IC}, dt::f32, tag::ab), dw_md({OC, IC}, dt::f32, tag::ab);
  if (dx) run(p.dx, dout_md, dout, w_md, w, dx_md, dx);
  run(p.dw, memory::desc({OC, T}, dt::f32, memory::dims{1, OC}), dout, memory::desc({T, IC}, dt::f32, tag::ab), x,
      dw_md, dw);
  if (db) bias_backward(db, dout, T, OC);
}

}  // namespace unmask
