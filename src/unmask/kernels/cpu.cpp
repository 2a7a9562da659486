#include "unmask/kernels/cpu.h"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace unmask {

namespace {

bool xgetbv_avx512_state() {  // the OS saves the opmask and zmm registers (XCR0 bits 1, 2, 5, 6, 7)
  uint32_t lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 0xE6) == 0xE6;
}

const CpuFeatures* g_override = nullptr;  // set only by ScopedCpuFeatures (tests)

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  const char* env = std::getenv("UNMASK_CPU");
  if (env && std::string_view(env) == "generic") return f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !xgetbv_avx512_state()) return f;
  f.f16c = c & bit_F16C, f.fma = c & bit_FMA;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx512f = b & bit_AVX512F, f.avx512bw = b & bit_AVX512BW, f.avx512dq = b & bit_AVX512DQ;
  f.avx512vl = b & bit_AVX512VL;
  f.avx512vnni = c & bit_AVX512VNNI;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512bf16 = a & bit_AVX512BF16;
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures detected = detect_cpu_features();
  return g_override ? *g_override : detected;
}

ScopedCpuFeatures::ScopedCpuFeatures(const CpuFeatures& f) : saved_(g_override), f_(f) { g_override = &f_; }
ScopedCpuFeatures::~ScopedCpuFeatures() { g_override = saved_; }

}  // namespace unmask
