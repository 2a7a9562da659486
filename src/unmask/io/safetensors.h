// safetensors (Hugging Face): an 8-byte little-endian header length, a JSON header {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {...}}, then the tensor bytes. Read memory-mapped with every offset,
// size and shape checked before use; a sharded checkpoint (model.safetensors.index.json: {"weight_map": {name:
// file}}) opens as one set of tensors.
//
// Shapes are given in the file's order (row-major, slowest first: a matrix W (OC, IC) has shape [OC, IC]); view()
// returns them in GGUF's order (ne[0] fastest), as everywhere else in unmask.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "unmask/base/mmap.h"
#include "unmask/tensor/tensor.h"

namespace unmask::safetensors {

struct TensorInfo {
  std::string name;
  DType type = DType::F32;      // F32, F16 or BF16 (others are rejected, naming the dtype string)
  std::vector<int64_t> shape;   // as in the file, slowest first
  const void* data = nullptr;   // into the mapping
  uint64_t nbytes = 0;
};

// One .safetensors file. Throws Error("PATH: what was wrong"): a header length beyond the file, malformed JSON, a
// tensor without dtype/shape/data_offsets, an unknown dtype, offsets outside the data section, overlapping tensors,
// a size that disagrees with shape × dtype, duplicate names.
class File {
 public:
  explicit File(const std::string& path);
  const std::string& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in the order of their data
  const std::map<std::string, std::string>& metadata() const { return meta_; }

 private:
  MappedFile file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> meta_;
};

// Every tensor of a checkpoint folder: model.safetensors, or the shards listed by model.safetensors.index.json
// (each shard opened once; a tensor the index names but its shard lacks is an error).
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& dir);
  const TensorInfo* find(std::string_view name) const;
  // The tensor, checked: present and of shape (file order) `shape`. Messages name the file.
  const TensorInfo& tensor(std::string_view name, const std::vector<int64_t>& shape) const;
  // A view with GGUF's dimension order.
  static TensorView view(const TensorInfo& t);
  std::vector<std::string> names() const;

 private:
  struct Entry {
    const TensorInfo* info;
    const File* file;  // the shard that holds it, for messages
  };
  std::string dir_;
  std::vector<std::unique_ptr<File>> files_;
  std::map<std::string, Entry, std::less<>> index_;
};

}  // namespace unmask::safetensors
