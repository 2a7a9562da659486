// safetensors reader: the header length, every tensor's dtype, shape and data offsets are checked against the
// file before a pointer into the mapping is handed out.
#include "unmask/io/safetensors.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "unmask/base/error.h"

namespace unmask::safetensors {

static_assert(std::endian::native == std::endian::little, "the safetensors reader assumes a little-endian host");

namespace {

using nlohmann::json;

// The header is JSON; real ones are a few hundred KiB even for sharded 70B checkpoints.
constexpr uint64_t kMaxHeader = uint64_t(100) << 20;

std::string shape_str(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

DType parse_dtype(const std::string& path, const std::string& name, const std::string& dtype) {
  if (dtype == "F32") return DType::F32;
  if (dtype == "F16") return DType::F16;
  if (dtype == "BF16") return DType::BF16;
  fail("{}: tensor {} has dtype {}, expected F32, F16 or BF16", path, name, dtype);
}

// Parses the header, rejecting a key that appears twice at the top level (nlohmann keeps the last one silently).
json parse_header(const std::string& path, const uint8_t* p, size_t n) {
  std::set<std::string> seen;
  auto unique_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      check(seen.insert(key).second, "{}: tensor {} appears twice in the header", path, key);
    }
    return true;
  };
  json h;
  try {
    h = json::parse(p, p + n, unique_keys);
  } catch (const json::exception& e) {
    fail("{}: the header is not valid JSON: {}", path, e.what());
  }
  check(h.is_object(), "{}: the header is a JSON {}, expected an object", path, h.type_name());
  return h;
}

// The element count of a shape, every dimension checked; throws on a negative dimension or an overflow.
int64_t element_count(const std::string& where, const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    check(d >= 0, "{} has a negative dimension in shape {}", where, shape_str(shape));
    check(d == 0 || n <= std::numeric_limits<int64_t>::max() / 8 / d, "{} has shape {}, whose size overflows", where,
          shape_str(shape));
    n *= d;
  }
  return n;
}

// One header entry -> TensorInfo (data not yet set; data_offsets returned relative to the data section).
TensorInfo parse_entry(const std::string& path, const std::string& name, const json& e, uint64_t offsets[2]) {
  const std::string where = fmt::format("{}: tensor {}", path, name);
  check(e.is_object(), "{} is a JSON {}, expected an object", where, e.type_name());
  for (const char* k : {"dtype", "shape", "data_offsets"}) check(e.contains(k), "{} has no \"{}\"", where, k);
  check(e.at("dtype").is_string(), "{}: \"dtype\" is not a string", where);
  const json& shape = e.at("shape");
  const json& offs = e.at("data_offsets");
  auto integer = [](const json& d) { return d.is_number_integer(); };
  check(shape.is_array() && std::all_of(shape.begin(), shape.end(), integer),
        "{}: \"shape\" is {}, expected an array of integers", where, shape.dump());
  check(offs.is_array() && offs.size() == 2 && offs[0].is_number_unsigned() && offs[1].is_number_unsigned(),
        "{}: \"data_offsets\" is {}, expected [begin, end]", where, offs.dump());
  TensorInfo t;
  t.name = name;
  t.type = parse_dtype(path, name, e.at("dtype").get<std::string>());
  for (const auto& d : shape) t.shape.push_back(d.get<int64_t>());
  t.nbytes = uint64_t(element_count(where, t.shape)) * row_bytes(t.type, 1);
  offsets[0] = offs[0].get<uint64_t>();
  offsets[1] = offs[1].get<uint64_t>();
  return t;
}

}  // namespace

File::File(const std::string& path) : file_(path) {
  const size_t size = file_.size();
  check(size >= 8, "{}: {} bytes, too short for the 8-byte header length", path, size);
  uint64_t n = 0;
  std::memcpy(&n, file_.data(), 8);
  check(n <= size - 8, "{}: header length {} extends beyond the file of {} bytes", path, n, size);
  check(n <= kMaxHeader, "{}: header length {} exceeds the limit of {} bytes", path, n, kMaxHeader);
  const json h = parse_header(path, file_.data() + 8, size_t(n));
  const uint8_t* data = file_.data() + 8 + n;
  const uint64_t data_size = size - 8 - n;
  for (const auto& [name, e] : h.items()) {
    if (name == "__metadata__") {
      check(e.is_object(), "{}: \"__metadata__\" is not an object", path);
      for (const auto& [k, v] : e.items()) {
        check(v.is_string(), "{}: __metadata__ value {} is not a string", path, k);
        meta_[k] = v.get<std::string>();
      }
      continue;
    }
    uint64_t off[2];
    TensorInfo t = parse_entry(path, name, e, off);
    check(off[0] <= off[1] && off[1] <= data_size,
          "{}: tensor {} has data_offsets [{}, {}], outside the data section of {} bytes", path, name, off[0], off[1],
          data_size);
    check(off[1] - off[0] == t.nbytes, "{}: tensor {} of dtype {} and shape {} needs {} bytes, data_offsets give {}",
          path, name, dtype_name(t.type), shape_str(t.shape), t.nbytes, off[1] - off[0]);
    check((8 + n + off[0]) % row_bytes(t.type, 1) == 0,
          "{}: tensor {} starts at byte {}, not aligned to its {}-byte elements", path, name, 8 + n + off[0],
          row_bytes(t.type, 1));
    t.data = data + off[0];
    tensors_.push_back(std::move(t));
  }
  // In the order of their data; each must end before the next begins.
  auto begin_of = [data](const TensorInfo& t) { return uint64_t(static_cast<const uint8_t*>(t.data) - data); };
  std::sort(tensors_.begin(), tensors_.end(),
            [&](const TensorInfo& a, const TensorInfo& b) { return begin_of(a) < begin_of(b); });
  for (size_t i = 1; i < tensors_.size(); ++i) {
    const TensorInfo &a = tensors_[i - 1], &b = tensors_[i];
    check(begin_of(b) >= begin_of(a) + a.nbytes, "{}: tensors {} and {} overlap: data_offsets [{}, {}] and [{}, {}]",
          path, a.name, b.name, begin_of(a), begin_of(a) + a.nbytes, begin_of(b), begin_of(b) + b.nbytes);
  }
}

namespace {

// The shard file names of an index.json, each tensor's shard (weight_map) checked to be a plain file name.
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  std::ifstream in(index_path);
  check(bool(in), "{}: cannot open for reading", index_path);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", index_path, e.what());
  }
  check(j.is_object() && j.contains("weight_map") && j.at("weight_map").is_object(),
        "{}: no \"weight_map\" object", index_path);
  std::map<std::string, std::string> map;
  for (const auto& [name, file] : j.at("weight_map").items()) {
    check(file.is_string(), "{}: weight_map[{}] is not a string", index_path, name);
    const auto f = file.get<std::string>();
    check(!f.empty() && f.find('/') == std::string::npos && f != "." && f != "..",
          "{}: weight_map[{}] = '{}', expected a file name in the folder", index_path, name, f);
    map[name] = f;
  }
  return map;
}

}  // namespace

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
  namespace fs = std::filesystem;
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  std::map<std::string, std::string> weight_map;
  if (fs::exists(index)) {
    weight_map = read_weight_map(index.string());
    std::set<std::string> shards;
    for (const auto& [name, file] : weight_map) shards.insert(file);
    for (const auto& s : shards) files_.push_back(std::make_unique<File>((fs::path(dir) / s).string()));
  } else {
    check(fs::exists(single), "{}: no model.safetensors or model.safetensors.index.json", dir);
    files_.push_back(std::make_unique<File>(single.string()));
  }
  for (const auto& f : files_) {
    for (const auto& t : f->tensors()) {
      auto [it, fresh] = index_.emplace(t.name, Entry{&t, f.get()});
      check(fresh, "{}: tensor {} is in both {} and {}", dir, t.name, it->second.file->path(), f->path());
    }
  }
  for (const auto& [name, file] : weight_map) {
    auto it = index_.find(name);
    const auto shard = (fs::path(dir) / file).string();
    check(it != index_.end() && it->second.file->path() == shard, "{}: tensor {}, which {} places there, is missing",
          shard, name, index.string());
  }
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.info;
}

const TensorInfo& Checkpoint::tensor(std::string_view name, const std::vector<int64_t>& shape) const {
  auto it = index_.find(name);
  check(it != index_.end(), "{}: tensor {} is missing", dir_, name);
  const TensorInfo& t = *it->second.info;
  check(t.shape == shape, "{}: tensor {} has shape {}, expected {}", it->second.file->path(), name,
        shape_str(t.shape), shape_str(shape));
  return t;
}

TensorView Checkpoint::view(const TensorInfo& t) {
  check(t.shape.size() <= 4, "tensor {} has {} dimensions, at most 4 are supported", t.name, t.shape.size());
  TensorView v;
  v.data = t.data;
  v.dtype = t.type;
  v.ndim = int(t.shape.size());
  for (int i = 0; i < v.ndim; ++i) v.ne[size_t(i)] = t.shape[t.shape.size() - 1 - size_t(i)];
  return v;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : index_) out.push_back(name);
  return out;
}

}  // namespace unmask::safetensors
