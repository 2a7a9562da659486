// Row-wise softmax, max-subtracted; -inf entries get probability 0.
#pragma once

namespace unmask {

// x (T, V) -> out (T, V). out may alias x. A row with no entry above -inf has no distribution: it is written as
// zeros and the call throws Error naming the first such row (after every other row is done).
void softmax_forward(float* out, const float* x, int T, int V);

namespace ref {
void softmax_forward(float* out, const float* x, int T, int V);
}

}  // namespace unmask
