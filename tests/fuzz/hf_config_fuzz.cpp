// libFuzzer target: a Hugging Face folder's config.json (model/hf.cpp, read_hf_config), read from a folder whose
// config.json is the input. Seeds: tests/fuzz/corpus/hf_config/.
#include <cstdint>

#include "fuzz_input.h"
#include "unmask/model/hf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unmask;
  static fuzz::InputFolder folder("config.json");
  folder.input.write(data, size);
  fuzz::expect_only_errors([&] { read_hf_config(folder.path.string()).summary(); });
  return 0;
}
