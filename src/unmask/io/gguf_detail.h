// Internals shared by the GGUF reader (gguf.cpp) and writer (gguf_write.cpp). Not part of the public API.
#pragma once

#include <cstdint>

#include "unmask/io/gguf.h"

namespace unmask::gguf::detail {

// Arrays of arrays are legal GGUF; a file may not nest them deeper than this (a bound on the reader's recursion).
inline constexpr int kMaxArrayDepth = 16;

// ggml keeps a tensor name in a char[GGML_MAX_NAME = 64] with its terminating NUL: a longer name is not a GGUF file
// llama.cpp can read.
inline constexpr size_t kMaxTensorName = 63;

// The fewest bytes a value of type t takes in the file: the bound that checks an array count against the bytes left.
inline uint64_t min_value_bytes(ValueType t) {
  switch (t) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kBool: return 1;
    case ValueType::kUint16: case ValueType::kInt16: return 2;
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kFloat32: return 4;
    case ValueType::kUint64: case ValueType::kInt64: case ValueType::kFloat64: return 8;
    case ValueType::kString: return 8;   // the length
    case ValueType::kArray: return 12;   // element type + count
  }
  return 1;
}

inline bool is_integer(ValueType t) {
  switch (t) {
    case ValueType::kUint8: case ValueType::kInt8: case ValueType::kUint16: case ValueType::kInt16:
    case ValueType::kUint32: case ValueType::kInt32: case ValueType::kUint64: case ValueType::kInt64: return true;
    default: return false;
  }
}

inline bool is_float(ValueType t) { return t == ValueType::kFloat32 || t == ValueType::kFloat64; }

}  // namespace unmask::gguf::detail
