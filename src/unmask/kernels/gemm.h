// Matrix multiplication through oneDNN.
//
// A Linear holds one weight matrix W (OC, IC), row-major as GGUF stores it (ne = {IC, OC}), in f32 or bf16, and
// computes out (T, OC) = x (T, IC) · Wᵀ (+ bias). The weight is reordered once into oneDNN's preferred blocked
// layout (prepacked) the first time a shape needs it; primitives are cached per T. bf16 weights take bf16
// activations (x is rounded to bf16 on the way in) and accumulate in f32.
#pragma once

#include <cstdint>
#include <memory>

#include "unmask/tensor/dtype.h"

namespace unmask {

class Linear {
 public:
  Linear();
  // w points at OC*IC elements of dtype (F32 or BF16) and must outlive the Linear.
  Linear(const void* w, DType dtype, int OC, int IC);
  ~Linear();
  Linear(Linear&&) noexcept;
  Linear& operator=(Linear&&) noexcept;

  // x (T, IC), bias (OC) or null -> out (T, OC). Not reentrant: one call at a time per Linear.
  void forward(float* out, const float* x, int T, const float* bias = nullptr) const;

  // The weight's values changed in place (an optimizer step): refresh every packed copy from it.
  void repack();

  int out_features() const { return oc_; }
  int in_features() const { return ic_; }
  DType dtype() const { return dtype_; }
  const void* weight() const { return w_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  const void* w_ = nullptr;
  DType dtype_ = DType::F32;
  int oc_ = 0, ic_ = 0;
};

// Number of threads oneDNN and the kernels use (OpenMP).
void set_kernel_threads(int n);

namespace ref {
// out (T, OC) = x (T, IC) · Wᵀ + bias, accumulated in double; W converted from its dtype (bf16 activations are
// rounded to bf16 first when dtype is BF16, as the fast path does).
void linear_forward(float* out, const float* x, const void* w, DType dtype, const float* bias, int T, int OC,
                    int IC);
}  // namespace ref

}  // namespace unmask
