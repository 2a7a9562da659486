// Writing a model's tensors in another type: f32, f16, bf16, or one of llama.cpp's quantization mixes (q8_0, q4_0,
// q4_1, q5_0, q5_1, q2_k, q3_k_s/m/l, q4_k_s/m, q5_k_s/m, q6_k), with llama.cpp's rules for which tensor gets which
// type (llama_tensor_get_type for LLaMA-like models, its fallbacks for rows that are not whole blocks included), so
// that the files are what llama.cpp itself would write.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "unmask/model/config.h"
#include "unmask/model/weights.h"

namespace unmask {

namespace gguf {
class Writer;
}

enum class QuantScheme {
  kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1, kQ5_0, kQ5_1, kQ2_K, kQ3_K_S, kQ3_K_M, kQ3_K_L, kQ4_K_S, kQ4_K_M, kQ5_K_S,
  kQ5_K_M, kQ6_K
};
// "f32", "q4_k_m", ... (case-insensitive); throws listing the known names.
QuantScheme parse_quant_scheme(std::string_view name);
std::string_view quant_scheme_name(QuantScheme s);
// llama.cpp's general.file_type number of the scheme (LLAMA_FTYPE_*).
int quant_file_type(QuantScheme s);

// The type the scheme gives one tensor of the model: `wanted` by llama.cpp's rules, `type` what it gets, which differs
// where a row is not whole blocks of `wanted` and llama.cpp falls back (Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0,
// Q5_K -> Q5_1, Q6_K -> Q8_0, then f16 if the row is not whole blocks of 32 either). Norms and biases stay f32.
struct QuantChoice {
  DType wanted, type;
  bool fell_back() const { return wanted != type; }
};
QuantChoice quant_choice(QuantScheme s, const TensorSpec& spec, const ModelConfig& c);
inline DType quant_type_for(QuantScheme s, const TensorSpec& spec, const ModelConfig& c) {
  return quant_choice(s, spec, c).type;
}
// The line that says so: "blk.0.attn_q.weight: rows of 96 values are not whole blocks of 256 for q4_k; q5_0 instead".
std::string fallback_note(const TensorSpec& spec, const QuantChoice& choice);

// Converts/quantizes every tensor of w and adds it to out (with general.file_type); the new tensor data lives in
// store, which must outlive out.write(). progress(done, total) is called after each tensor (for a progress bar).
// Returns fallback_note of every tensor that fell back, in tensor order.
std::vector<std::string> add_quantized_tensors(gguf::Writer& out, const ModelWeights& w, const ModelConfig& c,
                                               QuantScheme s, std::vector<std::vector<uint8_t>>& store,
                                               const std::function<void(size_t, size_t)>& progress = {});

}  // namespace unmask
