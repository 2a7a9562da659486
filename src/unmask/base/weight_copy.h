// Memory for a copy of a weight made at load (a packed or repacked layout), 64-byte aligned, in transparent huge
// pages where the kernel gives them: on this VM the first touch of each 4 KiB page costs more than filling it
// (~1.5 ms per MB against ~0.1 with 2 MiB pages), and a model's copies are written once, at its first pass.
// Copies over 8 MiB get memory of their own; smaller ones share 32 MiB chunks, each released when the last copy
// in it is (the chunk still taking new copies stays).
#pragma once

#include <cstddef>
#include <memory>

namespace unmask {

struct WeightChunk;
struct WeightFree {
  WeightChunk* chunk = nullptr;  // the shared chunk the copy lies in; null: memory of its own
  void operator()(void* p) const;
};
using WeightCopy = std::unique_ptr<void, WeightFree>;

// `what` names the copy in the out-of-memory error.
WeightCopy weight_copy(size_t bytes, const char* what);

}  // namespace unmask
