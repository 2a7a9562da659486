// Rotary position embedding, in the two layouts real checkpoints use.
//   kNorm ("NORM", GGUF llama/llada): rotates adjacent pairs (x[2i], x[2i+1]).
//   kNeox ("NEOX", HF, Qwen2/Dream GGUF): rotates half-split pairs (x[i], x[i + D/2]).
// Pair i turns by angle pos · theta^(-2i/D).
#pragma once

#include <cstdint>

namespace unmask {

enum class RopeLayout { kNorm, kNeox };

// x (T, H, D) rotated in place; pos (T) are the absolute positions of the T rows. D even.
void rope_forward(float* x, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta);

namespace ref {
void rope_forward(float* x, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta);
}

}  // namespace unmask
