// What the GGUF tests share: a metadata value of any type, width and element type, built directly.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "unmask/io/gguf.h"

namespace unmask::gguf::test {

inline Value make(ValueType t, std::variant<uint64_t, int64_t, double, bool, std::string, Value::Array> v,
           ValueType elem = ValueType::kUint8) {
  Value x;
  x.type = t;
  x.elem = elem;
  x.v = std::move(v);
  return x;
}

}  // namespace unmask::gguf::test
