// What the attention tests share: random inputs, the key-span patterns of the masks they try, and the cases.
#pragma once

#include <algorithm>
#include <vector>

#include "unmask/base/rng.h"
#include "unmask/kernels/attention.h"

namespace unmask::attention_test {

inline std::vector<float> randn(size_t n, Rng& rng) {
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.normal());
  return v;
}

enum class Mask { kCausal, kBidirectional, kBlockCausal5, kTwoRange, kWideGap, kCacheOffset };
inline const char* mask_name(Mask m) {
  const char* names[] = {"causal", "bidirectional", "block-causal-5", "two-range", "wide-gap", "cache-offset"};
  return names[int(m)];
}

// Query i sits at absolute position Tk - Tq + i (a KV cache holding Tk - Tq earlier keys).
inline std::vector<KeySpan> make_spans(Mask mask, int Tq, int Tk) {
  std::vector<KeySpan> s(Tq);
  const int off = Tk - Tq;
  for (int i = 0; i < Tq; ++i) {
    const int p = off + i;
    switch (mask) {
      case Mask::kCausal:
      case Mask::kCacheOffset: s[i] = {0, p + 1, 0, 0}; break;
      case Mask::kBidirectional: s[i] = {0, Tk, 0, 0}; break;
      case Mask::kBlockCausal5: s[i] = {0, std::min(Tk, (p / 5 + 1) * 5), 0, 0}; break;
      case Mask::kTwoRange: {
        const int e0 = 1 + (i * 7) % std::max(1, Tk / 2), b1 = e0 + 1 + i % 3;
        s[i] = b1 < Tk ? KeySpan{0, e0, b1, Tk} : KeySpan{0, e0, 0, 0};
        break;
      }
      case Mask::kWideGap: s[i] = Tk > 150 ? KeySpan{i % 10, 10 + i % 5, 140 + i % 7, Tk} : KeySpan{0, Tk, 0, 0}; break;
    }
  }
  return s;
}

struct Case {
  int Tq, Tk, Hq, Hkv, D;
  Mask mask;
};

inline bool sees(const KeySpan& s, int j) { return (j >= s.begin0 && j < s.end0) || (j >= s.begin1 && j < s.end1); }

}  // namespace unmask::attention_test
