// libFuzzer target: a sharded checkpoint's model.safetensors.index.json (io/safetensors.cpp, Checkpoint), read from
// a folder whose index is the input and which holds one valid shard, model-00001-of-00001.safetensors (the seed
// tests/fuzz/corpus/safetensors/model.safetensors). Seeds: tests/fuzz/corpus/safetensors_index/.
#include <cstdint>
#include <fstream>

#include "fuzz_input.h"
#include "unmask/io/safetensors.h"

namespace {

// The shard: an 8-byte header length, the JSON header (padded to 8 bytes), then the tensor bytes.
struct Folder : unmask::fuzz::InputFolder {
  Folder() : InputFolder("model.safetensors.index.json") {
    const std::string header =
        R"({"model.norm.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
        R"( "lm_head.weight": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [8, 16]}})";
    std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
    const uint64_t n = padded.size();
    std::ofstream f(path / "model-00001-of-00001.safetensors", std::ios::binary);
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << padded << std::string(16, '\x3f');
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unmask;
  static Folder folder;
  folder.input.write(data, size);
  fuzz::expect_only_errors([&] {
    safetensors::Checkpoint c(folder.path.string());
    for (const std::string& name : c.names()) safetensors::Checkpoint::view(*c.find(name));
  });
  return 0;
}
