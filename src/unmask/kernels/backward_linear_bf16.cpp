// Backward of a linear layer with bf16 GEMMs (mixed-precision training), through oneDNN matmul:
//   dx (T, IC)  = bf16(dout) (T, OC) · W (OC, IC) bf16         f32 destination
//   dw (OC, IC) += bf16(dout)ᵀ (OC, T) · bf16(x) (T, IC)       the transposed view through strides {1, OC}, summed
//                                                              into the f32 gradient by the sum post-op
//   db (OC)     += Σ_t dout                                    f32, rows added in order
// The bf16 copies of dout and x live in per-thread scratch; primitives are built once per shape and cached.
#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/backward.h"
#include "unmask/tensor/dtype.h"

namespace unmask {

namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

struct Bf16Runtime {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
};
Bf16Runtime& runtime() {
  static Bf16Runtime r;
  return r;
}

struct Descs {
  memory::desc dout, w, dx, doutT, x, dw;
  Descs(int T, int OC, int IC)
      : dout({T, OC}, dt::bf16, tag::ab), w({OC, IC}, dt::bf16, tag::ab), dx({T, IC}, dt::f32, tag::ab),
        doutT({OC, T}, dt::bf16, memory::dims{1, OC}), x({T, IC}, dt::bf16, tag::ab), dw({OC, IC}, dt::f32, tag::ab) {}
};

struct Plans {
  dnnl::matmul dx, dw;
};

const Plans& plans_for(int T, int OC, int IC) {
  static std::mutex mu;
  static std::map<std::tuple<int, int, int>, Plans> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(T, OC, IC);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  auto& rt = runtime();
  const Descs d(T, OC, IC);
  dnnl::post_ops sum;
  sum.append_sum(1.0f);
  dnnl::primitive_attr acc;
  acc.set_post_ops(sum);
  Plans p;
  p.dx = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(d.dout, d.w, d.dx), rt.eng));
  p.dw = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(d.doutT, d.x, d.dw), acc, rt.eng));
  return cache.emplace(key, std::move(p)).first->second;
}

void run(const dnnl::matmul& prim, const memory::desc& a_md, const void* a, const memory::desc& b_md, const void* b,
         const memory::desc& c_md, void* c) {
  auto& rt = runtime();
  memory am(a_md, rt.eng, const_cast<void*>(a)), bm(b_md, rt.eng, const_cast<void*>(b)), cm(c_md, rt.eng, c);
  prim.execute(rt.strm, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  rt.strm.wait();
}

// dst (n) = bf16(src (n)), rounded to nearest even.
void to_bf16(std::vector<uint16_t>& dst, const float* src, int64_t n) {
  dst.resize(size_t(n));
  uint16_t* d = dst.data();
#pragma omp parallel for schedule(static) if (n >= 65536)
  for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
}

}  // namespace

void linear_backward_bf16(float* dx, float* dw, float* db, const float* dout, const float* x, const uint16_t* w,
                          int T, int OC, int IC) {
  check(T >= 0 && OC > 0 && IC > 0, "linear_backward_bf16: T {} OC {} IC {}; expected T >= 0 and OC, IC > 0", T, OC,
        IC);
  check(dw != nullptr && dout != nullptr && x != nullptr && (dx == nullptr || w != nullptr),
        "linear_backward_bf16: dw, dout and x must not be null, nor w when dx is wanted");
  if (T == 0) return;
  static thread_local std::vector<uint16_t> dout16, x16;
  to_bf16(dout16, dout, int64_t(T) * OC);
  to_bf16(x16, x, int64_t(T) * IC);
  const Plans& p = plans_for(T, OC, IC);
  const Descs d(T, OC, IC);
  if (dx) run(p.dx, d.dout, dout16.data(), d.w, w, d.dx, dx);
  run(p.dw, d.doutT, dout16.data(), d.x, x16.data(), d.dw, dw);
  for (int t = 0; db && t < T; ++t)
    for (int o = 0; o < OC; ++o) db[o] += dout[int64_t(t) * OC + o];
}

}  // namespace unmask
