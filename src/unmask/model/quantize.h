// Writing a model's tensors in another type: f32, f16, bf16, q8_0, q4_0, or llama.cpp's Q4_K_M mix, with
// llama.cpp's rules for which tensor gets which type, so that the files are what llama.cpp itself would write.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "unmask/model/config.h"
#include "unmask/model/weights.h"

namespace unmask {

namespace gguf {
class Writer;
}

enum class QuantScheme { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K_M };
// "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m" (case-insensitive); throws listing the known names.
QuantScheme parse_quant_scheme(std::string_view name);
std::string_view quant_scheme_name(QuantScheme s);
// llama.cpp's general.file_type number of the scheme (LLAMA_FTYPE_*).
int quant_file_type(QuantScheme s);

// The type the scheme gives one tensor of the model (norms and biases stay f32; a row that is not whole blocks of
// the wanted type falls back as llama.cpp does).
DType quant_type_for(QuantScheme s, const TensorSpec& spec, const ModelConfig& c);

// Converts/quantizes every tensor of w and adds it to out (with general.file_type); the new tensor data lives in
// store, which must outlive out.write(). progress(done, total) is called after each tensor (for a progress bar).
void add_quantized_tensors(gguf::Writer& out, const ModelWeights& w, const ModelConfig& c, QuantScheme s,
                           std::vector<std::vector<uint8_t>>& store,
                           const std::function<void(size_t, size_t)>& progress = {});

}  // namespace unmask
