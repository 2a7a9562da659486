#include "unmask/model/quantize.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/io/gguf.h"
#include "unmask/kernels/quant.h"

namespace unmask {

namespace {

struct SchemeInfo {
  QuantScheme scheme;
  std::string_view name;
  int file_type;  // LLAMA_FTYPE_*
  DType base;     // the type of a matrix no rule singles out
};

constexpr SchemeInfo kSchemes[] = {
    {QuantScheme::kF32, "f32", 0, DType::F32},          {QuantScheme::kF16, "f16", 1, DType::F16},
    {QuantScheme::kBF16, "bf16", 32, DType::BF16},      {QuantScheme::kQ8_0, "q8_0", 7, DType::Q8_0},
    {QuantScheme::kQ4_0, "q4_0", 2, DType::Q4_0},       {QuantScheme::kQ4_1, "q4_1", 3, DType::Q4_1},
    {QuantScheme::kQ5_0, "q5_0", 8, DType::Q5_0},       {QuantScheme::kQ5_1, "q5_1", 9, DType::Q5_1},
    {QuantScheme::kQ2_K, "q2_k", 10, DType::Q2_K},      {QuantScheme::kQ3_K_S, "q3_k_s", 11, DType::Q3_K},
    {QuantScheme::kQ3_K_M, "q3_k_m", 12, DType::Q3_K},  {QuantScheme::kQ3_K_L, "q3_k_l", 13, DType::Q3_K},
    {QuantScheme::kQ4_K_S, "q4_k_s", 14, DType::Q4_K},  {QuantScheme::kQ4_K_M, "q4_k_m", 15, DType::Q4_K},
    {QuantScheme::kQ5_K_S, "q5_k_s", 16, DType::Q5_K},  {QuantScheme::kQ5_K_M, "q5_k_m", 17, DType::Q5_K},
    {QuantScheme::kQ6_K, "q6_k", 18, DType::Q6_K},
};

const SchemeInfo& info_of(QuantScheme s) {
  for (const auto& i : kSchemes)
    if (i.scheme == s) return i;
  fail("unknown quantization scheme {}", int(s));
}

bool has(const std::string& name, std::string_view part) { return name.find(part) != std::string::npos; }

// llama.cpp quantizes matrices (2-D) and stacked experts (3-D) only, never norms nor the MoE router.
bool quantizable(const TensorSpec& spec) {
  return spec.ne.size() >= 2 && !has(spec.name, "_norm.weight") && !has(spec.name, "ffn_gate_inp.weight");
}

// The layer of "blk.N.…"; -1 for a tensor outside the layers.
int layer_of(const std::string& name) {
  int layer = -1;
  return std::sscanf(name.c_str(), "blk.%d.", &layer) == 1 ? layer : -1;
}

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third layer between them.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// The output projection (or the embedding standing in for it when tied): Q6_K unless the scheme is q8_0, Q8_0
// when its rows are not whole blocks of the base type.
DType output_type(DType base, int64_t row) {
  if (row % dtype_info(base).block_size != 0) return DType::Q8_0;
  return base == DType::Q8_0 ? DType::Q8_0 : DType::Q6_K;
}

using S = QuantScheme;

// attn_v of layer i of n (llama.cpp counts the attn_v tensors; one per layer here).
DType attn_v_type(S s, DType t, int i, int n, const ModelConfig& c) {
  const bool gqa4 = c.n_kv_heads > 0 && c.n_heads / c.n_kv_heads >= 4;
  if (s == S::kQ2_K) t = gqa4 ? DType::Q4_K : DType::Q3_K;
  else if (s == S::kQ3_K_M) t = i < 2 ? DType::Q5_K : DType::Q4_K;
  else if (s == S::kQ3_K_L) t = DType::Q5_K;
  else if ((s == S::kQ4_K_M || s == S::kQ5_K_M) && use_more_bits(i, n)) t = DType::Q6_K;
  else if (s == S::kQ4_K_S && i < 4) t = DType::Q5_K;
  return c.n_experts == 8 ? DType::Q8_0 : t;
}

// ffn_down (or an expert stack of it) of layer i of n.
DType ffn_down_type(S s, DType t, int i, int n) {
  if (s == S::kQ2_K) return DType::Q3_K;
  if (s == S::kQ3_K_M) return i < n / 16 ? DType::Q5_K : DType::Q4_K;
  if (s == S::kQ3_K_L) return DType::Q5_K;
  if ((s == S::kQ4_K_M || s == S::kQ5_K_M) && use_more_bits(i, n)) return DType::Q6_K;
  if (s == S::kQ4_K_S && i < n / 8) return DType::Q5_K;
  return t;
}

DType attn_output_type(S s, DType t, const ModelConfig& c) {
  if (c.n_experts == 8)
    return s == S::kQ2_K || s == S::kQ3_K_S || s == S::kQ3_K_M || s == S::kQ4_K_S || s == S::kQ4_K_M ? DType::Q5_K
                                                                                                        : t;
  if (s == S::kQ2_K) return DType::Q3_K;
  if (s == S::kQ3_K_M) return DType::Q4_K;
  if (s == S::kQ3_K_L) return DType::Q5_K;
  return t;
}

// llama.cpp's llama_tensor_get_type for the schemes here (LLaMA-like architectures: its Falcon rules aside). Not
// made: the 70B-only bump of attn_v to Q5_K (llama.cpp keys it on the model's size class, which a GGUF file does
// not carry).
DType mixed_type(S s, DType base, const TensorSpec& spec, const ModelConfig& c) {
  const std::string& name = spec.name;
  if (name == "output.weight" || (c.tied_output && name == "token_embd.weight")) return output_type(base, spec.ne[0]);
  if (name == "token_embd.weight") return base;
  const int layer = layer_of(name);
  if (has(name, "attn_v.weight")) return attn_v_type(s, base, layer, c.n_layers, c);
  if (has(name, "attn_k.weight")) return c.n_experts == 8 ? DType::Q8_0 : base;
  if (has(name, "ffn_down")) return ffn_down_type(s, base, layer, c.n_layers);
  if (has(name, "attn_output.weight")) return attn_output_type(s, base, c);
  return base;
}

// llama.cpp's tensor_type_fallback: a row that is not whole blocks of the chosen type takes a 32-value type of at
// least as many bits, and f16 where the row is not whole blocks of 32 either.
DType fallback(DType t, int64_t row) {
  if (row % dtype_info(t).block_size == 0) return t;
  if (t == DType::Q2_K || t == DType::Q3_K) t = DType::Q4_0;
  else if (t == DType::Q4_K) t = DType::Q5_0;
  else if (t == DType::Q5_K) t = DType::Q5_1;
  else if (t == DType::Q6_K) t = DType::Q8_0;
  return row % dtype_info(t).block_size == 0 ? t : DType::F16;
}

// Converts the rows of src (any type) into type t at dst, in parallel over rows (each row by one thread).
void convert_rows(const TensorView& src, DType t, uint8_t* dst) {
  const int64_t n = src.ne[0], rows = src.rows();
  const size_t in_bytes = row_bytes(src.dtype, n), out_bytes = row_bytes(t, n);
  const auto* in = static_cast<const uint8_t*>(src.data);
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(n));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      row_to_f32(src.dtype, in + size_t(r) * in_bytes, row.data(), n);
      if (is_quant_dtype(t)) quantize_row(t, row.data(), dst + size_t(r) * out_bytes, n);
      else from_f32(t, row.data(), dst + size_t(r) * out_bytes, n);
    }
  }
}

}  // namespace

QuantScheme parse_quant_scheme(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string known;
  for (const auto& i : kSchemes) {
    if (i.name == lower) return i.scheme;
    known += (known.empty() ? "" : ", ") + std::string(i.name);
  }
  fail("unknown quantization type '{}'; known types: {}", name, known);
}

std::string_view quant_scheme_name(QuantScheme s) { return info_of(s).name; }

int quant_file_type(QuantScheme s) { return info_of(s).file_type; }

QuantChoice quant_choice(QuantScheme s, const TensorSpec& spec, const ModelConfig& c) {
  if (!quantizable(spec)) {
    const DType t = spec.type == DType::F16 || spec.type == DType::BF16 ? spec.type : DType::F32;
    return {t, t};
  }
  const DType base = info_of(s).base;
  if (!is_quant_dtype(base)) return {base, base};
  const DType wanted = mixed_type(s, base, spec, c);
  return {wanted, fallback(wanted, spec.ne[0])};
}

std::string fallback_note(const TensorSpec& spec, const QuantChoice& choice) {
  return fmt::format("{}: rows of {} values are not whole blocks of {} for {}; {} instead, as llama.cpp does",
                     spec.name, spec.ne[0], dtype_info(choice.wanted).block_size, dtype_name(choice.wanted),
                     dtype_name(choice.type));
}

std::vector<std::string> add_quantized_tensors(gguf::Writer& out, const ModelWeights& w, const ModelConfig& c,
                                               QuantScheme s, std::vector<std::vector<uint8_t>>& store,
                                               const std::function<void(size_t, size_t)>& progress) {
  out.set("general.file_type", gguf::Value::u32(uint32_t(quant_file_type(s))));
  out.set("general.quantization_version", gguf::Value::u32(2));  // ggml's GGML_QNT_VERSION
  std::vector<std::string> notes;
  size_t done = 0;
  for (const auto& [spec, view] : w.tensors()) {
    const QuantChoice choice = quant_choice(s, spec, c);
    if (choice.fell_back()) notes.push_back(fallback_note(spec, choice));
    const DType t = choice.type;
    const void* data = view.data;
    if (t != view.dtype) {
      auto& buf = store.emplace_back(row_bytes(t, view.ne[0]) * size_t(view.rows()));
      convert_rows(view, t, buf.data());
      data = buf.data();
    }
    out.add_tensor(spec.name, t, spec.ne, data);
    if (progress) progress(++done, w.tensors().size());
  }
  return notes;
}

}  // namespace unmask
