// GGUF (version 3, as llama.cpp writes it): read with every count, offset, size and alignment checked before use,
// tensor data memory-mapped; write atomically (temporary file, fsync, rename).
//
// Shapes follow GGUF: ne[0] is the fastest-moving dimension, so a row-major matrix W (OC, IC) has ne = {IC, OC}.
// Messages print shapes in that order too, as llama.cpp does.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "unmask/base/mmap.h"
#include "unmask/tensor/dtype.h"

namespace unmask::gguf {

// Metadata value types, numbered as in the file.
enum class ValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7,
  kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};
std::string_view value_type_name(ValueType t);

// One metadata value. Scalars of every integer width are held as int64_t/uint64_t, floats as double, with `type`
// remembering the width in the file so that a value read and written again keeps its type.
struct Value {
  using Array = std::vector<Value>;
  ValueType type = ValueType::kUint32;
  ValueType elem = ValueType::kUint8;  // element type when type == kArray
  std::variant<uint64_t, int64_t, double, bool, std::string, Array> v;

  static Value u32(uint32_t x) { return {ValueType::kUint32, ValueType::kUint8, uint64_t(x)}; }
  static Value i32(int32_t x) { return {ValueType::kInt32, ValueType::kUint8, int64_t(x)}; }
  static Value u64(uint64_t x) { return {ValueType::kUint64, ValueType::kUint8, x}; }
  static Value f32(float x) { return {ValueType::kFloat32, ValueType::kUint8, double(x)}; }
  static Value boolean(bool x) { return {ValueType::kBool, ValueType::kUint8, x}; }
  static Value str(std::string x) { return {ValueType::kString, ValueType::kUint8, std::move(x)}; }
  static Value strings(const std::vector<std::string>& xs);
  static Value i32s(const std::vector<int32_t>& xs);
  static Value f32s(const std::vector<float>& xs);
};

struct TensorInfo {
  std::string name;
  DType type = DType::F32;
  std::vector<int64_t> ne;    // 1 to 4 dims, ne[0] fastest
  uint64_t offset = 0;        // from the start of the data section
  uint64_t nbytes = 0;
  const void* data = nullptr; // into the mapping
  int64_t nelements() const;
};

// "[384, 1024]"
std::string shape_str(const std::vector<int64_t>& ne);

class Reader {
 public:
  // Maps and validates the whole file as ggml's gguf.cpp does: magic, version, counts against the file size,
  // nonempty unique keys, unique tensor names of at most 63 bytes, known value and tensor types, a uint32 power-of-two
  // alignment, dims in 1..4, rows whole blocks, each tensor's offset at the padded end of the one before, data inside
  // the file. Throws Error("PATH: what was wrong") on the first problem.
  explicit Reader(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  size_t file_size() const { return file_.size(); }

  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const Value* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters. A missing key or a value of the wrong type throws "PATH: key KEY ...". Integers of any width
  // convert when they fit; floats accept float32/float64.
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t fallback) const;
  double get_float(std::string_view key) const;
  double get_float(std::string_view key, double fallback) const;
  bool get_bool(std::string_view key) const;
  bool get_bool(std::string_view key, bool fallback) const;
  std::vector<std::string> get_strings(std::string_view key) const;
  std::vector<int64_t> get_ints(std::string_view key) const;
  std::vector<float> get_floats(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  // The tensor, checked: present ("PATH: tensor NAME is missing") and of shape ne ("PATH: tensor NAME has shape
  // [..], expected [..]").
  const TensorInfo& tensor(std::string_view name, const std::vector<int64_t>& ne) const;

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::pair<std::string, Value>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

class Writer {
 public:
  // Sets (or replaces) a key; keys are written in the order first set. general.alignment is honoured.
  void set(std::string key, Value value);
  bool has(std::string_view key) const;
  // The value set for key, or null.
  const Value* find(std::string_view key) const;
  // The keys set so far, in order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  // Adds a tensor; data (row_bytes(type, ne[0]) * rows bytes) must stay valid until write() returns.
  // Throws on a duplicate name, bad dims or a row that is not whole blocks.
  void add_tensor(std::string name, DType type, std::vector<int64_t> ne, const void* data);
  // Writes the file atomically (path.tmp, fsync, rename). Throws Error naming the path on failure.
  void write(const std::string& path) const;

 private:
  struct Pending {
    TensorInfo info;
    const void* data;
  };
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<Pending> tensors_;
};

}  // namespace unmask::gguf
