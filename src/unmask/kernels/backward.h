// Backward passes of the forward kernels (llm.c's siblings): each takes the gradient of its output and the values
// the forward kept, and produces the gradients of its inputs. Convention: gradients of activations that feed a
// residual stream or are shared (dx of RMSNorm, dk/dv of attention) and all parameter gradients are ACCUMULATED
// (+=); the others are written (=). Every function has a scalar twin in namespace ref.
#pragma once

#include <cstdint>

#include "unmask/kernels/attention.h"
#include "unmask/kernels/rope.h"

namespace unmask {

// Embedding: dtable (V, C) += scatter of dout (T, C) by tokens (T).
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int T, int V, int C);

// RMSNorm: x (T, C), w (C), rstd (T) from the forward; dout (T, C) -> dx (T, C) +=, dw (C) +=.
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      int T, int C, float eps);

// RoPE is a rotation: its backward rotates dx (T, H, D) by the opposite angles, in place.
void rope_backward(float* dx, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta);

// SwiGLU: out = silu(gate) · up. dout (n) -> dgate (n) =, dup (n) =.
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);

// Attention (see attention.h): q (Tq, Hq, D), k, v (Tk, Hkv, D), out (Tq, Hq, D) and lse (Tq, Hq) from the forward;
// dout (Tq, Hq, D) -> dq (Tq, Hq, D) =, dk (Tk, Hkv, D) +=, dv (Tk, Hkv, D) +=.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const KeySpan* spans, int Tq, int Tk,
                        int Hq, int Hkv, int D, float scale);

// A linear layer out (T, OC) = x (T, IC) · Wᵀ + b with W (OC, IC) f32: dout (T, OC) ->
// dx (T, IC) = dout · W (skipped when dx is null), dw (OC, IC) += doutᵀ · x, db (OC) += Σ_t dout (skipped when null).
void linear_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w, int T,
                     int OC, int IC);

// The same with bf16 GEMMs (mixed-precision training): W (OC, IC) is a bf16 copy of the f32 master; dout and x are
// rounded to bf16 on the way in, products accumulate in f32. dx (T, IC) = bf16(dout) · W, dw (OC, IC) +=
// bf16(dout)ᵀ · bf16(x), db (OC) += Σ_t dout in f32 (unrounded).
void linear_backward_bf16(float* dx, float* dw, float* db, const float* dout, const float* x, const uint16_t* w,
                          int T, int OC, int IC);

// Cross-entropy of logits (T, V) against targets (T); a target of -1 is ignored (loss 0, gradient 0).
// losses (T) = logsumexp(logits_t) - logits_t[target_t].
void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int T, int V);
// dlogits (T, V) = (softmax(logits_t) - onehot(target_t)) · dloss (T); rows with target -1 get 0. dlogits may
// alias logits.
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss, int T,
                            int V);

namespace ref {
void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int T, int V, int C);
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      int T, int C, float eps);
void rope_backward(float* dx, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, const KeySpan* spans, int Tq, int Tk,
                        int Hq, int Hkv, int D, float scale);
void linear_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w, int T,
                     int OC, int IC);
void linear_backward_bf16(float* dx, float* dw, float* db, const float* dout, const float* x, const uint16_t* w,
                          int T, int OC, int IC);
void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int T, int V);
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, const float* dloss, int T,
                            int V);
}  // namespace ref

}  // namespace unmask
