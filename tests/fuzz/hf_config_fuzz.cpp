// libFuzzer target: a Hugging Face folder's config.json (model/hf.cpp, read_hf_config). The folder is a directory
// of this process's own whose config.json is a symbolic link to the in-memory input file (writing a real file per
// input made the disk the bottleneck). Seeds: tests/fuzz/corpus/hf_config/.
#include <unistd.h>

#include <cstdint>
#include <filesystem>

#include "fuzz_input.h"
#include "unmask/model/hf.h"

namespace {

struct Folder {
  unmask::fuzz::InputFile config{"config.json"};
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("unmask_fuzz_hf_" + std::to_string(::getpid()));
  Folder() {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
    std::filesystem::create_symlink(config.write(nullptr, 0), path / "config.json");
  }
  ~Folder() { std::filesystem::remove_all(path); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unmask;
  static Folder folder;
  folder.config.write(data, size);
  fuzz::expect_only_errors([&] { read_hf_config(folder.path.string()).summary(); });
  return 0;
}
