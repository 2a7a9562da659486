// Row-wise softmax, max-subtracted; -inf entries get probability 0.
#pragma once

namespace unmask {

// x (T, V) -> out (T, V). out may alias x.
void softmax_forward(float* out, const float* x, int T, int V);

namespace ref {
void softmax_forward(float* out, const float* x, int T, int V);
}

}  // namespace unmask
