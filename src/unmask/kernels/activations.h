// Activations of the feed-forward block.
#pragma once

#include <cstdint>

namespace unmask {

// SiLU: x · sigmoid(x). x (n) -> out (n); out may alias x.
void silu_forward(float* out, const float* x, int64_t n);
// SwiGLU: out = silu(gate) · up. gate (n), up (n) -> out (n); out may alias gate or up.
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);

namespace ref {
void silu_forward(float* out, const float* x, int64_t n);
void swiglu_forward(float* out, const float* gate, const float* up, int64_t n);
}  // namespace ref

}  // namespace unmask
