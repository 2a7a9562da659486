// Element types. The numbering is ggml's, so a GGUF tensor type maps onto DType with a cast.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace unmask {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  BF16 = 30,
};

struct DTypeInfo {
  std::string_view name;
  int block_size;     // elements per block (1 for plain types)
  int block_bytes;    // bytes per block
};

// Throws Error for a type unmask does not know. known_dtype() tells without throwing.
const DTypeInfo& dtype_info(DType t);
bool known_dtype(uint32_t raw);
// ggml's name of a GGUF tensor type, known to unmask or not ("iq2_xxs" for 16); "" for a number ggml does not use.
std::string_view ggml_type_name(uint32_t raw);
// The types unmask reads, as "f32 (0), f16 (1), ..." for messages.
std::string known_dtype_list();
inline std::string_view dtype_name(DType t) { return dtype_info(t).name; }
// Bytes of a row of n elements; n must be a multiple of the block size (checked, throws).
size_t row_bytes(DType t, int64_t n);
// Parses "f32", "bf16", "f16", ... (case-insensitive); throws listing the known names.
DType parse_dtype(std::string_view name);

// bf16: the top half of an f32, rounded to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

// IEEE binary16 with round-to-nearest-even, subnormals, overflow to infinity, NaN kept.
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

// Rows of any plain or quantized type to f32 and back. n elements; src/dst hold whole blocks.
void to_f32(DType t, const void* src, float* dst, int64_t n);
void from_f32(DType t, const float* src, void* dst, int64_t n);  // plain types only (F32, F16, BF16)

}  // namespace unmask
