// Scaled dot-product attention with grouped-query heads, written once for every mask kind: each query carries the
// key ranges it may see (as gemma.cpp does). Causal, bidirectional and block-causal masks, and the x_t ⊕ x_0 mask
// of block-diffusion training, differ only in these ranges.
#pragma once

#include <cstdint>

namespace unmask {

// Keys visible to one query: [begin0, end0) ∪ [begin1, end1). Ranges are disjoint and end0 <= begin1; an empty
// second range has begin1 == end1. Every query must see at least one key.
struct KeySpan {
  int32_t begin0 = 0, end0 = 0;
  int32_t begin1 = 0, end1 = 0;
};

// q (Tq, Hq, D), k (Tk, Hkv, D), v (Tk, Hkv, D), spans (Tq) -> out (Tq, Hq, D).
// Query head h reads key/value head h / (Hq / Hkv); Hq is a multiple of Hkv. Scores are scaled by `scale`
// (1/sqrt(D) in the models). lse (Tq, Hq), if not null, receives the log-sum-exp of each query's scaled scores,
// which the backward pass uses. Spans are checked (throws Error naming the query). Keys outside every span of a
// block of queries are never read; a masked key lying between visible ones may be multiplied by probability 0, so
// its V row must be finite (its K row need not be).
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const KeySpan* spans,
                       int Tq, int Tk, int Hq, int Hkv, int D, float scale);

// The same contract, with Q·Kᵀ and P·V as bf16 dot products (AVX512-BF16 vdpbf16ps) accumulated in f32, for models
// whose weights are bf16. q, k and v are rounded to bf16 (round to nearest even; the instruction flushes subnormal
// inputs to zero), the probabilities P are rounded to bf16 for P·V only; the online softmax (max, exp, sum) and the
// output stay f32. K and V are converted once per call into a per-thread scratch. Decode (Tq <= 4) runs the f32
// kernel above unchanged (memory-bound there). Without AVX512-BF16 it rounds q, k, v and runs the f32 kernel.
// Deterministic whatever the thread count.
void attention_forward_bf16(float* out, float* lse, const float* q, const float* k, const float* v,
                            const KeySpan* spans, int Tq, int Tk, int Hq, int Hkv, int D, float scale);

// attention_forward's direct path at any Tq: each query row computed alone over its visible keys, exactly as a
// decode step (Tq <= 4) computes it, so a row's result does not depend on how many rows share the call (the tiled
// path above 4 rows sums in another order). For passes that must reproduce decode steps bit for bit
// (self-speculation's verification, Model::forward_draft); slower than the tiled path for many rows.
void attention_forward_rows(float* out, float* lse, const float* q, const float* k, const float* v,
                            const KeySpan* spans, int Tq, int Tk, int Hq, int Hkv, int D, float scale);

namespace ref {
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const KeySpan* spans,
                       int Tq, int Tk, int Hq, int Hkv, int D, float scale);
// The double loop of ref::attention_forward over q, k, v rounded to bf16 (nearest even, subnormals flushed to zero
// as vdpbf16ps's conversion does); P is not rounded.
void attention_forward_bf16(float* out, float* lse, const float* q, const float* k, const float* v,
                            const KeySpan* spans, int Tq, int Tk, int Hq, int Hkv, int D, float scale);
}

}  // namespace unmask
