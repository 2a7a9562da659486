#include "unmask/tensor/dtype.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iterator>
#include <string>

#include "unmask/base/error.h"

namespace unmask {

namespace {

struct Entry {
  DType type;
  DTypeInfo info;
};

constexpr Entry kTypes[] = {
    {DType::F32, {"f32", 1, 4}},       {DType::F16, {"f16", 1, 2}},       {DType::Q4_0, {"q4_0", 32, 18}},
    {DType::Q4_1, {"q4_1", 32, 20}},   {DType::Q5_0, {"q5_0", 32, 22}},   {DType::Q5_1, {"q5_1", 32, 24}},
    {DType::Q8_0, {"q8_0", 32, 34}},   {DType::Q2_K, {"q2_k", 256, 84}},  {DType::Q3_K, {"q3_k", 256, 110}},
    {DType::Q4_K, {"q4_k", 256, 144}}, {DType::Q5_K, {"q5_k", 256, 176}}, {DType::Q6_K, {"q6_k", 256, 210}},
    {DType::BF16, {"bf16", 1, 2}},
};

// ggml's enum ggml_type, by number ("" where ggml removed or never used the number).
constexpr std::string_view kGgmlNames[] = {
    "f32",     "f16",    "q4_0",   "q4_1",   "",       "",     "q5_0",    "q5_1",    "q8_0",     "q8_1",    "q2_k",
    "q3_k",    "q4_k",   "q5_k",   "q6_k",   "q8_k",   "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s",   "iq4_nl",  "iq3_s",
    "iq2_s",   "iq4_xs", "i8",     "i16",    "i32",    "i64",  "f64",     "iq1_m",   "bf16",     "",        "",
    "",        "tq1_0",  "tq2_0",  "",       "",       "",     "mxfp4",   "nvfp4",   "q1_0",     "q2_0",
};

const Entry* find(uint32_t raw) {
  for (const auto& e : kTypes)
    if (uint32_t(e.type) == raw) return &e;
  return nullptr;
}

}  // namespace

bool known_dtype(uint32_t raw) { return find(raw) != nullptr; }

std::string_view ggml_type_name(uint32_t raw) { return raw < std::size(kGgmlNames) ? kGgmlNames[raw] : ""; }

std::string known_dtype_list() {
  std::string out;
  for (const auto& e : kTypes)
    out += (out.empty() ? "" : ", ") + std::string(e.info.name) + " (" + std::to_string(uint32_t(e.type)) + ")";
  return out;
}

const DTypeInfo& dtype_info(DType t) {
  const Entry* e = find(uint32_t(t));
  check(e != nullptr, "unknown tensor type {}", uint32_t(t));
  return e->info;
}

size_t row_bytes(DType t, int64_t n) {
  const auto& info = dtype_info(t);
  check(n >= 0 && n % info.block_size == 0, "a row of {} elements is not a whole number of {} blocks of {}", n,
        info.name, info.block_size);
  return size_t(n / info.block_size) * size_t(info.block_bytes);
}

DType parse_dtype(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string known;
  for (const auto& e : kTypes) {
    if (e.info.name == lower) return e.type;
    known += (known.empty() ? "" : ", ") + std::string(e.info.name);
  }
  fail("unknown type '{}'; known types: {}", name, known);
}

uint16_t f32_to_f16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // NaN
  int32_t exp = int32_t(abs >> 23) - 127 + 15;
  uint32_t mant = abs & 0x7fffffu;
  if (exp >= 31) return uint16_t(sign | 0x7c00u);  // overflow to infinity
  if (exp <= 0) {                                   // subnormal or zero in f16
    if (exp < -10) return uint16_t(sign);
    mant |= 0x800000u;
    int shift = 14 - exp;  // bring to a 10-bit subnormal mantissa
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = (uint32_t(exp) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent: correct
  return uint16_t(sign | half);
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    float v = std::ldexp(float(mant), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

void to_f32(DType t, const void* src, float* dst, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case DType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    default: fail("conversion of {} to f32 is not implemented yet", dtype_name(t));
  }
}

void from_f32(DType t, const float* src, void* dst, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    default: fail("conversion of f32 to {} is not implemented", dtype_name(t));
  }
}

}  // namespace unmask
