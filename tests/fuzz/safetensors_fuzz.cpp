// libFuzzer target: the safetensors reader (io/safetensors.cpp), and each tensor's view in GGUF's dimension order.
// Seeds: tests/fuzz/corpus/safetensors/.
#include <cstdint>

#include "fuzz_input.h"
#include "unmask/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unmask;
  static fuzz::InputFile input("model.safetensors");
  const std::string& path = input.write(data, size);
  fuzz::expect_only_errors([&] {
    safetensors::File f(path);
    for (const safetensors::TensorInfo& t : f.tensors()) {
      const TensorView v = safetensors::Checkpoint::view(t);
      // The reader promised nbytes inside the mapping: touch its first and last byte.
      if (t.nbytes > 0) {
        const auto* p = static_cast<const volatile uint8_t*>(v.data);
        (void)p[0];
        (void)p[t.nbytes - 1];
      }
    }
  });
  return 0;
}
