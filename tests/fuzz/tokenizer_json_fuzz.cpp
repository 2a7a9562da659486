// libFuzzer target: the Hugging Face tokenizer.json loader (tokenizer/vocab_json.cpp and the tokenizer it builds).
// Seeds: tests/fuzz/corpus/tokenizer_json/.
#include <cstdint>

#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace unmask;
  static fuzz::InputFile input("tokenizer.json");
  const std::string& path = input.write(data, size);
  fuzz::expect_only_errors([&] { fuzz::exercise(*load_tokenizer_json(path)); });
  return 0;
}
