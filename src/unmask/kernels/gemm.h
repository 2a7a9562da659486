// Matrix multiplication through oneDNN.
//
// A Linear holds one weight matrix W (OC, IC), row-major as GGUF stores it (ne = {IC, OC}), in f32 or bf16, and
// computes out (T, OC) = x (T, IC) · Wᵀ (+ bias). The weight is reordered once into oneDNN's preferred blocked
// layout (prepacked: pack_blocked of dnnl_util.h, the bytes oneDNN's reorder gives, several times faster) the first
// time a shape needs it; primitives are cached per T. bf16 weights take bf16
// activations (x is rounded to bf16 on the way in) and accumulate in f32.
//
// f16 and quantized weights are read in place (memory-mapped), never copied whole, and a Linear may stack parts of
// different types (a Q4_K_M layer holds Q4_K q/k and a Q6_K v). Every output is computed by one thread in one fixed
// order (results do not depend on the thread count):
// - quantized parts: x quantized to int8 per block (quantize_acts) at every T, then quant_gemm's one arithmetic
//   (quant_gemm.h, where the error bound is derived), the same at every T (batch-invariant): Q8_0, Q4_0, Q4_1,
//   Q5_0, Q5_1 and Q4_K through int8 VNNI register tiles over a copy repacked into 16-row groups on the first call
//   (the copy takes the weight's size); the other K types up to kQuantRowsDirect rows straight from the blocks,
//   more through register tiles over panels of 16 weight rows decoded per call.
// - f16, bf16 and f32 parts (batch-invariant: one arithmetic for every T):
//   every output dot_f32 of the row converted exactly to f32 with the row of x (16 lane
//   sums of FMAs, reduce16), in register tiles of up to 6 rows of x × 4 weight rows converted on the fly (one row
//   of x: the weight rows one at a time, a single stream the prefetcher follows). The weights stay
//   exact and x stays f32, so the error is at most (IC/16 + 5)·eps·Σ|w x|: below llama.cpp's f16 path, which
//   rounds x to f16 (2^-11 relative per product), and below bf16 arithmetic (dpbf16ps would round the f16 weights
//   to bf16: 2^-9 relative per weight), so bf16 is not an option here at equal error.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "unmask/tensor/dtype.h"

namespace unmask {

// Rows [.., .. + rows) of a stacked weight: `rows` rows of IC values of dtype at data (row-major, read in place).
struct LinearPart {
  const void* data;
  DType dtype;
  int rows;
};

class Linear {
 public:
  Linear();
  // w points at OC rows of IC elements of dtype and must outlive the Linear. F32 and BF16 run on oneDNN; F16 and
  // the quantized types as one part of the constructor below.
  Linear(const void* w, DType dtype, int OC, int IC);
  // The parts stacked in order (OC = Σ rows), each of any type (f32, f16, bf16, quantized), read in place. Throws
  // naming the part when a row is not whole blocks of its type. repack: the quantized types avx512::repack takes
  // are copied into its layout on the first call (their size again in memory; faster), else read from the blocks
  // (the same bits).
  Linear(std::vector<LinearPart> parts, int IC, bool repack = true);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  // x (T, IC), bias (OC) or null -> out (T, OC). Not reentrant: one call at a time per Linear.
  void forward(float* out, const float* x, int T, const float* bias = nullptr) const;

  // The weight's values changed in place (an optimizer step): refresh every packed copy from it.
  void repack();
  // Gives back what the calls so far left behind (an idle server's memory): the scratch sized by the largest call,
  // and the primitive and packed weight copy of every row count except the `keep` run most often since the last
  // release (a later call with another row count builds them again). Counts start afresh.
  void release(int keep);

  int out_features() const { return oc_; }
  // The parts (one for a single weight).
  const std::vector<LinearPart>& parts() const { return parts_; }
  int in_features() const { return ic_; }
  DType dtype() const { return dtype_; }
  const void* weight() const { return w_; }

 private:
  struct Impl;
  struct PartsImpl;  // gemm_parts.cpp
  void init_parts(int IC, bool repack);
  void forward_parts(float* out, const float* x, int T, const float* bias) const;
  void release_parts();
  void repack_parts() const;  // the parts avx512::repack takes, on the first call (AVX-512)
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<PartsImpl> parts_impl_;
  std::vector<LinearPart> parts_;
  const void* w_ = nullptr;
  DType dtype_ = DType::F32;
  int oc_ = 0, ic_ = 0;
};

// Number of threads oneDNN and the kernels use (OpenMP).
void set_kernel_threads(int n);
// Frees the calling thread's GEMM scratch and empties oneDNN's process-wide cache of built primitives (it keeps
// the code of every shape run so far alive after the Linears let go of it); primitives still in use stay.
void release_kernel_cache();

// Σ a_i b_i over n values in f32: 16 lane sums (i mod 16) of FMAs, zeros past n, then reduce16: lanes i + 8,
// then i + 4, then i + 2, then the two. AVX-512 or portable C++, the same bits.
float dot_f32(const float* a, const float* b, int n);

namespace ref {
// out (T, OC) = x (T, IC) · Wᵀ + bias, accumulated in double; W converted from its dtype (bf16 activations are
// rounded to bf16 first when dtype is BF16, as the fast path does; any other type is dequantized/converted exactly
// with x taken as is: a caller that checks the int8 row-dot path passes the quantized activations' values).
void linear_forward(float* out, const float* x, const void* w, DType dtype, const float* bias, int T, int OC,
                    int IC);
}  // namespace ref

}  // namespace unmask
