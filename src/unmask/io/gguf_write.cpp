// GGUF writer, and the small helpers of gguf.h that the reader and writer share.
//
// Layout written (as llama.cpp's gguf_write_to_buf): magic, version 3, n_tensors, n_kv, the pairs, the tensor
// infos, zero padding to the alignment, then each tensor's data followed by zero padding to the alignment.
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "unmask/base/error.h"
#include "unmask/io/gguf.h"
#include "unmask/io/gguf_detail.h"

namespace unmask::gguf {

std::string_view value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kUint8: return "uint8";
    case ValueType::kInt8: return "int8";
    case ValueType::kUint16: return "uint16";
    case ValueType::kInt16: return "int16";
    case ValueType::kUint32: return "uint32";
    case ValueType::kInt32: return "int32";
    case ValueType::kFloat32: return "float32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kUint64: return "uint64";
    case ValueType::kInt64: return "int64";
    case ValueType::kFloat64: return "float64";
  }
  return "unknown";
}

std::string shape_str(const std::vector<int64_t>& ne) { return fmt::format("[{}]", fmt::join(ne, ", ")); }

int64_t TensorInfo::nelements() const {
  int64_t n = 1;
  for (int64_t x : ne) n *= x;
  return n;
}

Value Value::strings(const std::vector<std::string>& xs) {
  Array items;
  items.reserve(xs.size());
  for (const auto& x : xs) items.push_back(str(x));
  return {ValueType::kArray, ValueType::kString, std::move(items)};
}

Value Value::i32s(const std::vector<int32_t>& xs) {
  Array items;
  items.reserve(xs.size());
  for (int32_t x : xs) items.push_back(i32(x));
  return {ValueType::kArray, ValueType::kInt32, std::move(items)};
}

Value Value::f32s(const std::vector<float>& xs) {
  Array items;
  items.reserve(xs.size());
  for (float x : xs) items.push_back(f32(x));
  return {ValueType::kArray, ValueType::kFloat32, std::move(items)};
}

namespace {

using Bytes = std::vector<uint8_t>;

void put_bytes(Bytes& out, const void* p, size_t n) {
  size_t at = out.size();
  out.resize(at + n);
  if (n > 0) std::memcpy(out.data() + at, p, n);
}

template <typename T>
void put(Bytes& out, T x) {
  put_bytes(out, &x, sizeof(T));
}

void put_string(Bytes& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  put_bytes(out, s.data(), s.size());
}

// The integer held by v (either alternative), checked to lie in [lo, hi] of the type it is written as.
template <typename T>
T checked_int(const std::string& where, const Value& v) {
  const auto* u = std::get_if<uint64_t>(&v.v);
  const auto* s = std::get_if<int64_t>(&v.v);
  check(u || s, "gguf writer: {} has type {} but does not hold an integer", where, value_type_name(v.type));
  bool fits = u ? *u <= uint64_t(std::numeric_limits<T>::max())
                : *s >= int64_t(std::numeric_limits<T>::min()) &&
                      (*s < 0 || uint64_t(*s) <= uint64_t(std::numeric_limits<T>::max()));
  if (!fits) {
    fail("gguf writer: {} is {}, out of range for {}", where, u ? fmt::format("{}", *u) : fmt::format("{}", *s),
         value_type_name(v.type));
  }
  return u ? T(*u) : T(*s);
}

template <typename Alt>
const Alt& held(const std::string& where, const Value& v) {
  const Alt* x = std::get_if<Alt>(&v.v);
  check(x != nullptr, "gguf writer: {} has type {} but holds another kind of value", where,
        value_type_name(v.type));
  return *x;
}

void encode_value(Bytes& out, const std::string& where, const Value& v, int depth);

void encode_array(Bytes& out, const std::string& where, const Value& v, int depth) {
  const auto& items = held<Value::Array>(where, v);
  check(uint32_t(v.elem) <= uint32_t(ValueType::kFloat64), "gguf writer: {} has unknown element type {}", where,
        uint32_t(v.elem));
  check(depth < detail::kMaxArrayDepth, "gguf writer: {} nests arrays more than {} deep", where,
        detail::kMaxArrayDepth);
  put<uint32_t>(out, uint32_t(v.elem));
  put<uint64_t>(out, items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].type != v.elem) {
      fail("gguf writer: {} is an array of {}, but element {} has type {}", where, value_type_name(v.elem), i,
           value_type_name(items[i].type));
    }
    encode_value(out, where, items[i], depth + 1);
  }
}

void encode_value(Bytes& out, const std::string& where, const Value& v, int depth) {
  switch (v.type) {
    case ValueType::kUint8: put(out, checked_int<uint8_t>(where, v)); break;
    case ValueType::kInt8: put(out, checked_int<int8_t>(where, v)); break;
    case ValueType::kUint16: put(out, checked_int<uint16_t>(where, v)); break;
    case ValueType::kInt16: put(out, checked_int<int16_t>(where, v)); break;
    case ValueType::kUint32: put(out, checked_int<uint32_t>(where, v)); break;
    case ValueType::kInt32: put(out, checked_int<int32_t>(where, v)); break;
    case ValueType::kUint64: put(out, checked_int<uint64_t>(where, v)); break;
    case ValueType::kInt64: put(out, checked_int<int64_t>(where, v)); break;
    case ValueType::kFloat32: put(out, float(held<double>(where, v))); break;
    case ValueType::kFloat64: put(out, held<double>(where, v)); break;
    case ValueType::kBool: put<uint8_t>(out, held<bool>(where, v) ? 1 : 0); break;
    case ValueType::kString: put_string(out, held<std::string>(where, v)); break;
    case ValueType::kArray: encode_array(out, where, v, depth); break;
    default: fail("gguf writer: {} has unknown value type {}", where, uint32_t(v.type));
  }
}

void encode_pair(Bytes& out, const std::string& key, const Value& v) {
  put_string(out, key);
  put<uint32_t>(out, uint32_t(v.type));
  encode_value(out, "key " + key, v, 0);
}

uint64_t alignment_of(const Value& v) {
  check(v.type == ValueType::kUint32, "gguf writer: key general.alignment has type {}, expected uint32",
        value_type_name(v.type));
  uint64_t a = checked_int<uint32_t>("key general.alignment", v);
  check(a != 0 && std::has_single_bit(a), "gguf writer: key general.alignment is {}, expected a nonzero power of two",
        a);
  return a;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace

bool Writer::has(std::string_view key) const { return find(key) != nullptr; }

const Value* Writer::find(std::string_view key) const {
  for (const auto& kv : kv_)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

void Writer::set(std::string key, Value value) {
  check(!key.empty(), "gguf writer: empty metadata key");
  Bytes scratch;
  encode_pair(scratch, key, value);  // validates: a bad value throws here, not at write()
  if (key == "general.alignment") alignment_of(value);
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(value));
}

void Writer::add_tensor(std::string name, DType type, std::vector<int64_t> ne, const void* data) {
  check(ne.size() >= 1 && ne.size() <= 4, "gguf writer: tensor {} has {} dimensions, expected 1 to 4", name,
        ne.size());
  check(name.size() <= detail::kMaxTensorName, "gguf writer: tensor name {} is {} bytes long, expected at most {}",
        name, name.size(), detail::kMaxTensorName);
  check(known_dtype(uint32_t(type)), "gguf writer: tensor {} has unknown type {}", name, uint32_t(type));
  for (const Pending& p : tensors_) check(p.info.name != name, "gguf writer: duplicate tensor name {}", name);
  const DTypeInfo& info = dtype_info(type);
  int64_t rows = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    check(ne[d] >= 0, "gguf writer: tensor {} has ne[{}] = {}, expected a size >= 0", name, d, ne[d]);
    check(d == 0 || !__builtin_mul_overflow(rows, ne[d], &rows), "gguf writer: tensor {} shape {} overflows",
          name, shape_str(ne));
  }
  check(ne[0] % info.block_size == 0,
        "gguf writer: tensor {} of type {} has ne[0] = {}, expected a multiple of the block size {}", name,
        info.name, ne[0], info.block_size);
  uint64_t nbytes = 0;
  check(!__builtin_mul_overflow(uint64_t(row_bytes(type, ne[0])), uint64_t(rows), &nbytes),
        "gguf writer: tensor {} shape {} overflows", name, shape_str(ne));
  check(data != nullptr || nbytes == 0, "gguf writer: tensor {} has no data", name);
  Pending p{TensorInfo{std::move(name), type, std::move(ne), 0, nbytes, data}, data};
  tensors_.push_back(std::move(p));
}

void Writer::write(const std::string& path) const {
  uint64_t alignment = 32;
  for (const auto& [k, v] : kv_) {
    if (k == "general.alignment") alignment = alignment_of(v);
  }
  Bytes head;
  put<uint32_t>(head, 0x46554747);  // "GGUF" little-endian
  put<uint32_t>(head, 3);
  put<uint64_t>(head, tensors_.size());
  put<uint64_t>(head, kv_.size());
  for (const auto& [k, v] : kv_) encode_pair(head, k, v);
  uint64_t offset = 0;
  for (const Pending& p : tensors_) {
    put_string(head, p.info.name);
    put<uint32_t>(head, uint32_t(p.info.ne.size()));
    for (int64_t x : p.info.ne) put<int64_t>(head, x);
    put<uint32_t>(head, uint32_t(p.info.type));
    put<uint64_t>(head, offset);
    offset = align_up(offset + p.info.nbytes, alignment);
  }
  AtomicFile f(path);
  f.write(head.data(), head.size());
  f.pad_to(alignment);
  for (const Pending& p : tensors_) {
    f.write(p.data, p.info.nbytes);
    f.pad_to(alignment);
  }
  f.commit();
}

}  // namespace unmask::gguf
