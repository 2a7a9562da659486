// libFuzzer target: the GGUF reader (io/gguf.cpp) and what is read from a GGUF file after it: the tokenizer
// (tokenizer.ggml.* keys) and the model (the configuration's keys, every tensor bound and shape-checked).
// Seeds: tests/fuzz/corpus/gguf/.
#include <cstdint>

#include "fuzz_input.h"
#include "unmask/io/gguf.h"
#include "unmask/model/model.h"
#include "unmask/tensor/dtype.h"

namespace {

using namespace unmask;

// The reader promised: a known type, 1 to 4 dims, ne >= 0, whole blocks per row, nbytes = rows * row bytes.
// Touching each tensor's first and last byte faults when its data is not inside the mapping.
void check_tensors(const gguf::Reader& r) {
  for (const gguf::TensorInfo& t : r.tensors()) {
    const DTypeInfo& info = dtype_info(t.type);
    if (t.ne.empty() || t.ne.size() > 4 || t.ne[0] % info.block_size != 0) std::abort();
    uint64_t rows = 1;
    for (size_t d = 1; d < t.ne.size(); ++d) rows *= uint64_t(t.ne[d]);
    if (t.nbytes != rows * row_bytes(t.type, t.ne[0])) std::abort();
    if (t.offset % r.alignment() != 0 || t.nbytes > r.file_size()) std::abort();
    if (t.nbytes > 0) {
      const auto* p = static_cast<const volatile uint8_t*>(t.data);
      (void)p[0];
      (void)p[t.nbytes - 1];
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::InputFile input("gguf");
  const std::string& path = input.write(data, size);
  fuzz::expect_only_errors([&] {
    gguf::Reader r(path);
    check_tensors(r);
    if (r.has("tokenizer.ggml.model")) fuzz::expect_only_errors([&] { fuzz::exercise(*load_tokenizer(r)); });
    if (r.has("general.architecture")) Model::load(path);
  });
  return 0;
}
