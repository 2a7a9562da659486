// Backward of a linear layer out (T, OC) = x (T, IC) · Wᵀ + b through oneDNN matmul, in f32 or with bf16 GEMMs
// (mixed-precision training: dout and x rounded to bf16, W a bf16 copy, f32 accumulation and destinations):
//   dx (T, IC)  = dout (T, OC) · W (OC, IC)     src dout 'ab', weights W 'ab' (K = OC, N = IC): no reorder, since
//                                               W changes every training step
//   dw (OC, IC) += doutᵀ (OC, T) · x (T, IC)    src dout viewed transposed through strides {1, OC}, weights x 'ab',
//                                               accumulated into dw by the sum post-op
//   db (OC)     += Σ_t dout                      f32 column sums, split by column chunks, rows added in order
// Primitives are built once per (rows, OC, IC, type), rows rounded by gemm_rows() with zero rows appended, and kept
// in a process-wide cache (guarded by a mutex; oneDNN primitives may be executed from several threads at once).
#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/kernels/backward.h"
#include "unmask/kernels/dnnl_util.h"
#include "unmask/tensor/dtype.h"

namespace unmask {

namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

constexpr int kColChunk = 256;  // columns per work item of the bias column sum

struct Descs {
  memory::desc dout, w, dx, doutT, x, dw;
  Descs(int T, int OC, int IC, dt type)
      : dout({T, OC}, type, tag::ab), w({OC, IC}, type, tag::ab), dx({T, IC}, dt::f32, tag::ab),
        doutT({OC, T}, type, memory::dims{1, OC}), x({T, IC}, type, tag::ab), dw({OC, IC}, dt::f32, tag::ab) {}
};

struct Plans {
  dnnl::matmul dx, dw;
};

// dx: (T, OC) · (OC, IC) -> (T, IC); dw: (OC, T) [strided view of dout] · (T, IC) -> (OC, IC), dst += result.
const Plans& plans_for(int T, int OC, int IC, dt type) {
  static std::mutex mu;
  static std::map<std::tuple<int, int, int, dt>, Plans> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_tuple(T, OC, IC, type);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  auto& rt = dnnl_runtime();
  const Descs d(T, OC, IC, type);
  dnnl::post_ops sum;
  sum.append_sum(1.0f);
  dnnl::primitive_attr acc;
  acc.set_post_ops(sum);
  Plans p;
  p.dx = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(d.dout, d.w, d.dx), rt.eng));
  p.dw = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(d.doutT, d.x, d.dw), acc, rt.eng));
  return cache.emplace(key, std::move(p)).first->second;
}

void run(const dnnl::matmul& prim, const memory::desc& a_md, const void* a, const memory::desc& b_md,
         const void* b, const memory::desc& c_md, void* c) {
  auto& rt = dnnl_runtime();
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

// rows (T, n) of f32 -> dst (Tp, n) of the GEMM type, rows T..Tp zero. Returns dst's data, or src itself when
// nothing needs converting or padding.
const void* gemm_input(std::vector<uint8_t>& dst, const float* src, int T, int Tp, int64_t n, dt type) {
  if (type == dt::f32 && T == Tp) return src;
  const size_t elem = type == dt::bf16 ? 2 : 4;
  dst.assign(size_t(Tp) * size_t(n) * elem, 0);
  if (type == dt::f32) {
    std::memcpy(dst.data(), src, size_t(T) * size_t(n) * elem);
  } else {
    auto* d = reinterpret_cast<uint16_t*>(dst.data());
#pragma omp parallel for schedule(static) if (int64_t(T) * n >= 65536)
    for (int64_t i = 0; i < int64_t(T) * n; ++i) d[i] = f32_to_bf16(src[i]);
  }
  return dst.data();
}

void backward(float* dx, float* dw, float* db, const float* dout, const float* x, const void* w, int T, int OC,
              int IC, dt type, const char* name) {
  check(T >= 0 && OC > 0 && IC > 0, "{}: T {} OC {} IC {}; expected T >= 0 and OC, IC > 0", name, T, OC, IC);
  check(dw != nullptr && dout != nullptr && x != nullptr && (dx == nullptr || w != nullptr),
        "{}: dw, dout and x must not be null, nor w when dx is wanted", name);
  if (T == 0) return;
  const int Tp = gemm_rows(T);
  static thread_local std::vector<uint8_t> dout_buf, x_buf;
  static thread_local std::vector<float> dx_buf;
  const void* g = gemm_input(dout_buf, dout, T, Tp, OC, type);
  const void* xs = gemm_input(x_buf, x, T, Tp, IC, type);
  const Plans& p = plans_for(Tp, OC, IC, type);
  const Descs d(Tp, OC, IC, type);
  if (dx) {
    float* dst = Tp == T ? dx : (dx_buf.resize(size_t(Tp) * IC), dx_buf.data());
    run(p.dx, d.dout, g, d.w, w, d.dx, dst);
    if (dst != dx) std::copy_n(dst, size_t(T) * IC, dx);
  }
  run(p.dw, d.doutT, g, d.x, xs, d.dw, dw);  // the zero rows add nothing
  if (db) bias_backward(db, dout, T, OC);
}

}  // namespace

// dout (T, OC), x (T, IC), w (OC, IC) -> dx (T, IC) = (if not null), dw (OC, IC) +=, db (OC) += (if not null).
void linear_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w, int T,
                     int OC, int IC) {
  backward(dx, dw, db, dout, x, w, T, OC, IC, dt::f32, "linear_backward");
}

void linear_backward_bf16(float* dx, float* dw, float* db, const float* dout, const float* x, const uint16_t* w,
                          int T, int OC, int IC) {
  backward(dx, dw, db, dout, x, w, T, OC, IC, dt::bf16, "linear_backward_bf16");
}

}  // namespace unmask
