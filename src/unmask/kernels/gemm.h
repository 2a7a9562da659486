// Matrix multiplication through oneDNN.
//
// A Linear holds one weight matrix W (OC, IC), row-major as GGUF stores it (ne = {IC, OC}), in f32 or bf16, and
// computes out (T, OC) = x (T, IC) · Wᵀ (+ bias). The weight is reordered once into oneDNN's preferred blocked
// layout (prepacked) the first time a shape needs it; primitives are cached per T. bf16 weights take bf16
// activations (x is rounded to bf16 on the way in) and accumulate in f32.
//
// f16 and quantized weights (Q8_0, Q4_0, Q4_K, Q6_K) are read in place (memory-mapped), never copied whole, and a
// Linear may stack parts of different types (a Q4_K_M layer holds Q4_K q/k and a Q6_K v). Up to kQuantRowsMatvec
// rows, a quantized part runs as row dots on int8 activations (quantize_acts, VNNI) and an f16 part as f32 row dots
// (dot_f32) on rows converted one at a time, output channels split across the threads. More rows dequantize panels
// of 64 weight rows exactly to f32, kQuantPanelK columns at a time, into per-thread scratch, packed for
// gemm_packed_f32, panels split across the threads. Every output is computed by one thread in one fixed order:
// results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "unmask/tensor/dtype.h"

namespace unmask {

// Row counts up to which quantized parts take the int8 row-dot path.
constexpr int kQuantRowsMatvec = 4;
// Columns per chunk of a dequantized panel (a multiple of every block size): x's chunk of 4 rows stays in L1.
constexpr int kQuantPanelK = 1024;

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
  // naming the part when a row is not whole blocks of its type.
  Linear(std::vector<LinearPart> parts, int IC);
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
  void init_parts(int IC);
  void forward_parts(float* out, const float* x, int T, const float* bias) const;
  void release_parts();
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

// Σ a_i b_i over n values in f32: 16 lane sums (i mod 16), then one reduction. AVX-512 or portable C++.
float dot_f32(const float* a, const float* b, int n);
// w (N, K) row-major -> packed: ⌈N/32⌉ blocks of (K, 32) (column n of block j is row 32j + n of w), zero-padded.
void pack_f32_panel(const float* w, int N, int K, float* packed);
// out (T, N), row stride ldo, (+)= x (T, K), row stride ldx, · wᵀ in f32, w packed by pack_f32_panel: register tiles
// of 6 rows × 32 columns; each output one sequential sum over k (FMA by FMA on AVX-512), the same whatever T, N and
// its place in the tiles; accumulate adds the result to out. Single-threaded (callers split N). AVX-512 where the
// CPU has it, portable C++ otherwise.
void gemm_packed_f32(const float* x, int64_t ldx, int T, const float* packed, int N, int K, float* out, int64_t ldo,
                     bool accumulate = false);

namespace ref {
// out (T, OC) = x (T, IC) · Wᵀ + bias, accumulated in double; W converted from its dtype (bf16 activations are
// rounded to bf16 first when dtype is BF16, as the fast path does; any other type is dequantized/converted exactly
// with x taken as is: a caller that checks the int8 row-dot path passes the quantized activations' values).
void linear_forward(float* out, const float* x, const void* w, DType dtype, const float* bias, int T, int OC,
                    int IC);
}  // namespace ref

}  // namespace unmask
