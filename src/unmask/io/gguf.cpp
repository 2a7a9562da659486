// GGUF reader: every count, length, offset and size is checked against the bytes that remain before it is used.
// The writer lives in gguf_write.cpp; the pieces both share (value type names, sizes) in gguf_detail.h.
#include "unmask/io/gguf.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "unmask/base/error.h"
#include "unmask/io/gguf_detail.h"

namespace unmask::gguf {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

using detail::kMaxArrayDepth;
using detail::kMaxTensorName;
using detail::min_value_bytes;

// Counts are checked against the bytes left, but an in-memory Value is larger than its smallest encoding, so
// reserve at most this many up front and let larger (legitimate) containers grow.
size_t reserve_count(uint64_t n) { return size_t(std::min<uint64_t>(n, 1 << 16)); }

// A bounds-checked read position in the mapping. `context` names the item being parsed ("key general.name",
// "tensor info #3 (blk.0.attn_q.weight)") so that a truncation says where it happened.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* data, size_t size) : path_(path), data_(data), size_(size) {}

  const std::string& path() const { return path_; }
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  void set_context(std::string context) { context_ = std::move(context); }
  const std::string& context() const { return context_; }

  void need(uint64_t n, std::string_view what) const {
    if (n <= remaining()) return;
    fail("{}: truncated file: {} of {} needs {} bytes at offset {}, but the file ends after {} more (size {})",
         path_, what, context_, n, pos_, remaining(), size_);
  }

  template <typename T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T x;
    std::memcpy(&x, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return x;
  }

  std::string read_string(std::string_view what) {
    uint64_t n = read<uint64_t>(what);
    if (n > remaining()) {
      fail("{}: {} of {} has length {} at offset {}, but only {} bytes remain in the file", path_, what, context_,
           n, pos_ - 8, remaining());
    }
    std::string s(reinterpret_cast<const char*>(data_ + pos_), size_t(n));
    pos_ += n;
    return s;
  }

 private:
  const std::string& path_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string context_ = "the header";
};

ValueType checked_value_type(const Cursor& c, uint32_t raw, std::string_view what) {
  if (raw > uint32_t(ValueType::kFloat64)) {
    fail("{}: {} has unknown {} {} at offset {}, expected 0..12", c.path(), c.context(), what, raw, c.pos() - 4);
  }
  return ValueType(raw);
}

Value read_value(Cursor& c, ValueType t, int depth);

Value read_array(Cursor& c, int depth) {
  ValueType et = checked_value_type(c, c.read<uint32_t>("array element type"), "array element type");
  uint64_t n = c.read<uint64_t>("array count");
  uint64_t min_bytes = min_value_bytes(et);
  if (n > c.remaining() / min_bytes) {
    fail("{}: array of {} has {} elements of type {} at offset {}, needing at least {} bytes each, but only {} "
         "bytes remain",
         c.path(), c.context(), n, value_type_name(et), c.pos() - 8, min_bytes, c.remaining());
  }
  if (et == ValueType::kArray && depth >= kMaxArrayDepth) {
    fail("{}: arrays of {} are nested more than {} deep", c.path(), c.context(), kMaxArrayDepth);
  }
  Value::Array items;
  items.reserve(reserve_count(n));
  for (uint64_t i = 0; i < n; ++i) items.push_back(read_value(c, et, depth + 1));
  Value v;
  v.type = ValueType::kArray;
  v.elem = et;
  v.v = std::move(items);
  return v;
}

Value read_value(Cursor& c, ValueType t, int depth) {
  Value v;
  v.type = t;
  switch (t) {
    case ValueType::kUint8: v.v = uint64_t(c.read<uint8_t>("uint8 value")); break;
    case ValueType::kInt8: v.v = int64_t(c.read<int8_t>("int8 value")); break;
    case ValueType::kUint16: v.v = uint64_t(c.read<uint16_t>("uint16 value")); break;
    case ValueType::kInt16: v.v = int64_t(c.read<int16_t>("int16 value")); break;
    case ValueType::kUint32: v.v = uint64_t(c.read<uint32_t>("uint32 value")); break;
    case ValueType::kInt32: v.v = int64_t(c.read<int32_t>("int32 value")); break;
    case ValueType::kUint64: v.v = c.read<uint64_t>("uint64 value"); break;
    case ValueType::kInt64: v.v = c.read<int64_t>("int64 value"); break;
    case ValueType::kFloat32: v.v = double(c.read<float>("float32 value")); break;
    case ValueType::kFloat64: v.v = c.read<double>("float64 value"); break;
    case ValueType::kBool: {
      uint8_t b = c.read<uint8_t>("bool value");
      check(b <= 1, "{}: bool value of {} at offset {} is {}, expected 0 or 1", c.path(), c.context(), c.pos() - 1,
            b);
      v.v = b == 1;
      break;
    }
    case ValueType::kString: v.v = c.read_string("string value"); break;
    case ValueType::kArray: return read_array(c, depth);
  }
  return v;
}

struct Header {
  uint32_t version;
  uint64_t n_tensors, n_kv;
};

Header read_header(Cursor& c) {
  c.need(4, "the magic");
  char magic[4];
  for (char& m : magic) m = char(c.read<uint8_t>("the magic"));
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    fail("{}: not a GGUF file: magic is {:02x} {:02x} {:02x} {:02x}, expected 'GGUF' (47 47 55 46)", c.path(),
         uint8_t(magic[0]), uint8_t(magic[1]), uint8_t(magic[2]), uint8_t(magic[3]));
  }
  Header h;
  h.version = c.read<uint32_t>("the version");
  if (h.version == 1) fail("{}: GGUF version 1 is not supported (it used 32-bit counts); expected version 2 or 3", c.path());
  if (h.version != 2 && h.version != 3) {
    uint32_t swapped = __builtin_bswap32(h.version);
    fail("{}: unsupported GGUF version {}{}, expected 2 or 3", c.path(), h.version,
         swapped == 2 || swapped == 3 ? " (the file looks big-endian, which unmask does not read)" : "");
  }
  h.n_tensors = c.read<uint64_t>("the tensor count");
  h.n_kv = c.read<uint64_t>("the metadata count");
  // Every pair takes at least 13 bytes (empty key, type, one byte of value), every tensor info at least 32.
  uint64_t left = c.remaining();
  if (h.n_kv > left / 13 || h.n_tensors > left / 32 || h.n_kv * 13 + h.n_tensors * 32 > left) {
    fail("{}: header claims {} metadata pairs and {} tensors, which cannot fit in the {} bytes after the header",
         c.path(), h.n_kv, h.n_tensors, left);
  }
  return h;
}

void read_metadata(Cursor& c, uint64_t n_kv, std::vector<std::pair<std::string, Value>>& kv,
                   std::map<std::string, size_t, std::less<>>& index) {
  kv.reserve(reserve_count(n_kv));
  for (uint64_t i = 0; i < n_kv; ++i) {
    c.set_context(fmt::format("metadata pair #{}", i));
    std::string key = c.read_string("the key");
    if (key.empty()) {
      fail("{}: metadata pair #{} has an empty key, expected a name such as general.architecture", c.path(), i);
    }
    c.set_context(fmt::format("key {}", key));
    if (index.count(key)) fail("{}: duplicate metadata key {} (pair #{})", c.path(), key, i);
    ValueType t = checked_value_type(c, c.read<uint32_t>("the value type"), "value type");
    Value v = read_value(c, t, 0);
    index.emplace(key, kv.size());
    kv.emplace_back(std::move(key), std::move(v));
  }
}

uint64_t read_alignment(const std::string& path, const Value* v) {
  if (v == nullptr) return 32;
  // ggml reads it with gguf_get_val_u32, which accepts no other type.
  if (v->type != ValueType::kUint32) {
    fail("{}: key general.alignment has type {}, expected uint32", path, value_type_name(v->type));
  }
  uint64_t a = std::get<uint64_t>(v->v);
  if (a == 0 || !std::has_single_bit(a)) {
    fail("{}: key general.alignment is {}, expected a nonzero power of two", path, a);
  }
  return a;
}

// Product of ne with overflow checks; false when it does not fit in int64.
bool checked_product(const std::vector<int64_t>& ne, size_t first, int64_t& out) {
  out = 1;
  for (size_t i = first; i < ne.size(); ++i) {
    if (__builtin_mul_overflow(out, ne[i], &out)) return false;
  }
  return true;
}

void check_tensor_type(const Cursor& c, const TensorInfo& t, uint32_t raw) {
  if (known_dtype(raw)) return;
  const std::string_view ggml = ggml_type_name(raw);
  if (!ggml.empty())
    fail("{}: tensor {} has type {} ({}), which unmask does not read; it reads {}", c.path(), t.name, ggml, raw,
         known_dtype_list());
  fail("{}: tensor {} has unknown type {}, expected one of {}", c.path(), t.name, raw, known_dtype_list());
}

void compute_nbytes(const Cursor& c, TensorInfo& t) {
  const DTypeInfo& info = dtype_info(t.type);
  if (t.ne[0] % info.block_size != 0) {
    fail("{}: tensor {} of type {} has shape {}: ne[0] = {} is not a multiple of the block size {}", c.path(),
         t.name, info.name, shape_str(t.ne), t.ne[0], info.block_size);
  }
  int64_t total = 0, rows = 0;
  if (!checked_product(t.ne, 0, total) || !checked_product(t.ne, 1, rows)) {
    fail("{}: tensor {} has shape {}, whose element count overflows int64", c.path(), t.name, shape_str(t.ne));
  }
  uint64_t row = uint64_t(t.ne[0] / info.block_size) * uint64_t(info.block_bytes);
  if (__builtin_mul_overflow(row, uint64_t(rows), &t.nbytes)) {
    fail("{}: tensor {} has shape {}, whose size in bytes overflows", c.path(), t.name, shape_str(t.ne));
  }
}

TensorInfo read_tensor_info(Cursor& c, uint64_t i) {
  c.set_context(fmt::format("tensor info #{}", i));
  TensorInfo t;
  t.name = c.read_string("the tensor name");
  if (t.name.size() > kMaxTensorName) {
    fail("{}: the name of tensor info #{} ({}...) is {} bytes long, expected at most {} (ggml's GGML_MAX_NAME)",
         c.path(), i, t.name.substr(0, 32), t.name.size(), kMaxTensorName);
  }
  c.set_context(fmt::format("tensor {}", t.name));
  uint32_t n_dims = c.read<uint32_t>("the dimension count");
  if (n_dims < 1 || n_dims > 4) {
    fail("{}: tensor {} has {} dimensions, expected 1 to 4", c.path(), t.name, n_dims);
  }
  c.need(uint64_t(n_dims) * 8, "the shape");
  for (uint32_t d = 0; d < n_dims; ++d) t.ne.push_back(c.read<int64_t>("the shape"));
  for (uint32_t d = 0; d < n_dims; ++d) {
    if (t.ne[d] < 0) fail("{}: tensor {} has ne[{}] = {}, expected a size >= 0", c.path(), t.name, d, t.ne[d]);
  }
  uint32_t raw = c.read<uint32_t>("the tensor type");
  check_tensor_type(c, t, raw);
  t.type = DType(raw);
  t.offset = c.read<uint64_t>("the data offset");
  compute_nbytes(c, t);
  return t;
}

// The layout ggml requires (and writes): each tensor starts where the one before it ends, padded to the alignment,
// so offsets are aligned and no two tensors share bytes; and every tensor's data lies inside the file.
void check_tensor_data(const std::string& path, std::vector<TensorInfo>& tensors, uint64_t data_start,
                       uint64_t file_size, uint64_t alignment, const uint8_t* base) {
  uint64_t data_size = file_size - data_start;
  uint64_t expected = 0;
  for (TensorInfo& t : tensors) {
    if (t.offset != expected) {
      fail("{}: tensor {} has data offset {}, expected {}: tensors lie in the order of their infos, each at the "
           "end of the one before padded to the alignment {}, as ggml requires",
           path, t.name, t.offset, expected, alignment);
    }
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      fail("{}: tensor {} needs {} bytes at data offset {}, past the end of the file: the data section starts at "
           "{} and holds only {} bytes",
           path, t.name, t.nbytes, t.offset, data_start, data_size);
    }
    t.data = base + data_start + t.offset;
    // Cannot overflow: offset + nbytes <= data_size, and the padding adds less than the alignment.
    expected = t.offset + t.nbytes + (alignment - t.nbytes % alignment) % alignment;
  }
}

}  // namespace

Reader::Reader(const std::string& path) : file_(path) {
  Cursor c(file_.path(), file_.data(), file_.size());
  Header h = read_header(c);
  version_ = h.version;
  read_metadata(c, h.n_kv, kv_, kv_index_);
  alignment_ = read_alignment(path, find("general.alignment"));
  tensors_.reserve(reserve_count(h.n_tensors));
  for (uint64_t i = 0; i < h.n_tensors; ++i) {
    TensorInfo t = read_tensor_info(c, i);
    if (tensor_index_.count(t.name)) fail("{}: duplicate tensor name {} (tensor info #{})", path, t.name, i);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }
  uint64_t end = c.pos();
  uint64_t data_start = end % alignment_ == 0 ? end : end + (alignment_ - end % alignment_);
  if (data_start < end || data_start > file_.size()) {
    // A file without tensors needs no data section, as in llama.cpp.
    if (!tensors_.empty()) {
      fail("{}: the data section (tensor infos end at offset {}, padded to the alignment {}) starts past the end "
           "of the file ({} bytes)",
           path, end, alignment_, file_.size());
    }
    return;
  }
  check_tensor_data(path, tensors_, data_start, file_.size(), alignment_, file_.data());
}

namespace {

std::string type_str(const Value& v) {
  if (v.type != ValueType::kArray) return std::string(value_type_name(v.type));
  return fmt::format("array of {}", value_type_name(v.elem));
}

[[noreturn]] void wrong_type(const std::string& path, std::string_view key, const Value& v,
                             std::string_view expected) {
  fail("{}: key {} has type {}, expected {}", path, key, type_str(v), expected);
}

const Value& require(const Reader& r, std::string_view key) {
  const Value* v = r.find(key);
  if (v == nullptr) fail("{}: key {} is missing", r.path(), key);
  return *v;
}

// An integer value of any width as int64; `what` names it in a message ("key K", "key K element 3").
int64_t int_of(const std::string& path, const std::string& what, const Value& v) {
  if (const auto* s = std::get_if<int64_t>(&v.v)) return *s;
  uint64_t u = std::get<uint64_t>(v.v);
  if (u > uint64_t(std::numeric_limits<int64_t>::max())) {
    fail("{}: {} is {}, which does not fit in int64", path, what, u);
  }
  return int64_t(u);
}

// An array value whose elements (if any) satisfy `ok`; otherwise a message naming `expected`.
const Value::Array& array_of(const Reader& r, std::string_view key, bool (*ok)(ValueType),
                             std::string_view expected) {
  const Value& v = require(r, key);
  if (v.type != ValueType::kArray) wrong_type(r.path(), key, v, expected);
  const auto& items = std::get<Value::Array>(v.v);
  if (!items.empty() && !ok(v.elem)) wrong_type(r.path(), key, v, expected);
  return items;
}

}  // namespace

const Value* Reader::find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

std::string Reader::get_string(std::string_view key) const {
  const Value& v = require(*this, key);
  if (v.type != ValueType::kString) wrong_type(path(), key, v, "string");
  return std::get<std::string>(v.v);
}

int64_t Reader::get_int(std::string_view key) const {
  const Value& v = require(*this, key);
  if (!detail::is_integer(v.type)) wrong_type(path(), key, v, "an integer");
  return int_of(path(), fmt::format("key {}", key), v);
}

int64_t Reader::get_int(std::string_view key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}

double Reader::get_float(std::string_view key) const {
  const Value& v = require(*this, key);
  if (!detail::is_float(v.type)) wrong_type(path(), key, v, "float32 or float64");
  return std::get<double>(v.v);
}

double Reader::get_float(std::string_view key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}

bool Reader::get_bool(std::string_view key) const {
  const Value& v = require(*this, key);
  if (v.type != ValueType::kBool) wrong_type(path(), key, v, "bool");
  return std::get<bool>(v.v);
}

bool Reader::get_bool(std::string_view key, bool fallback) const { return has(key) ? get_bool(key) : fallback; }

std::vector<std::string> Reader::get_strings(std::string_view key) const {
  const auto& items = array_of(*this, key, [](ValueType t) { return t == ValueType::kString; }, "array of string");
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const Value& x : items) out.push_back(std::get<std::string>(x.v));
  return out;
}

std::vector<int64_t> Reader::get_ints(std::string_view key) const {
  const auto& items = array_of(*this, key, detail::is_integer, "array of integers");
  std::vector<int64_t> out;
  out.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const auto* s = std::get_if<int64_t>(&items[i].v);
    out.push_back(s ? *s : int_of(path(), fmt::format("key {} element {}", key, i), items[i]));
  }
  return out;
}

std::vector<float> Reader::get_floats(std::string_view key) const {
  const auto& items = array_of(*this, key, detail::is_float, "array of float32 or float64");
  std::vector<float> out;
  out.reserve(items.size());
  for (const Value& x : items) out.push_back(float(std::get<double>(x.v)));
  return out;
}

const TensorInfo* Reader::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& Reader::tensor(std::string_view name, const std::vector<int64_t>& ne) const {
  const TensorInfo* t = find_tensor(name);
  if (t == nullptr) fail("{}: tensor {} is missing", path(), name);
  if (t->ne != ne) fail("{}: tensor {} has shape {}, expected {}", path(), name, shape_str(t->ne), shape_str(ne));
  return *t;
}

}  // namespace unmask::gguf
