// Rotary position embedding, in the two layouts real checkpoints use.
//   kNorm ("NORM", GGUF llama/llada): rotates adjacent pairs (x[2i], x[2i+1]).
//   kNeox ("NEOX", HF, Qwen2/Dream GGUF): rotates half-split pairs (x[i], x[i + D/2]).
// Pair i turns by angle pos · theta^(-2i/D).
#pragma once

#include <cstdint>
#include <vector>

namespace unmask {

enum class RopeLayout { kNorm, kNeox };

// x (T, H, D) rotated in place; pos (T) are the absolute positions of the T rows. D even.
void rope_forward(float* x, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta);

// The cos and sin of every angle of positions [0, size()), rounded to f32 exactly as rope_forward rounds them, so
// that a model computes them once rather than twice per layer and call. apply() gives rope_forward's result bit for
// bit.
class RopeTable {
 public:
  RopeTable() = default;
  RopeTable(int D, float theta);  // D even, theta > 0; empty until reserve()
  void reserve(int positions);    // extends the table to cover [0, positions)
  int size() const { return inv_freq_.empty() ? 0 : int(cos_.size() / inv_freq_.size()); }
  // x (T, H, D) rotated in place; pos (T), each in [0, size()) (throws otherwise, naming the row).
  void apply(float* x, const int32_t* pos, int T, int H, RopeLayout layout) const;

 private:
  std::vector<double> inv_freq_;  // (D/2)
  std::vector<float> cos_, sin_;  // (size(), D/2)
};

namespace ref {
void rope_forward(float* x, const int32_t* pos, int T, int H, int D, RopeLayout layout, float theta);
}

}  // namespace unmask
