// What the CPU we run on can do, detected once at run time, so that one binary picks the AVX-512/VNNI kernels where
// they exist and portable C++ elsewhere.
#pragma once

namespace unmask {

struct CpuFeatures {
  bool f16c = false, fma = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  // What the AVX-512 quantized kernels need (quant_avx512.cpp is compiled for exactly these).
  bool avx512_int8() const { return f16c && fma && avx512f && avx512bw && avx512dq && avx512vl && avx512vnni; }
};

// This CPU's features (cpuid), with every feature off when the environment sets UNMASK_CPU=generic.
CpuFeatures detect_cpu_features();

// The features the kernels dispatch on: detect_cpu_features(), read once, unless a ScopedCpuFeatures is alive.
const CpuFeatures& cpu_features();

// Tests: makes the kernels dispatch on `f` (e.g. all off, to run the portable path on an AVX-512 machine) for the
// scope's lifetime. Not thread-safe: create it outside parallel regions.
class ScopedCpuFeatures {
 public:
  explicit ScopedCpuFeatures(const CpuFeatures& f);
  ~ScopedCpuFeatures();
  ScopedCpuFeatures(const ScopedCpuFeatures&) = delete;
  ScopedCpuFeatures& operator=(const ScopedCpuFeatures&) = delete;

 private:
  const CpuFeatures* saved_;
  CpuFeatures f_;
};

}  // namespace unmask
