// The AVX-512 VNNI kernel of the quantized GEMM (quant_gemm.h). A group of 16 weight rows is decoded once into a
// panel where each 64-byte vector holds one item of all 16 rows (lane r = row r): 4 codes, a sub-block scale, a
// pair of zero points or mins, a float scale. A register tile of MR rows of x then runs over the panel: dpbusd of 4
// codes × 4 broadcast activation bytes gives the 16 rows' partial integer dots at once, the sub-block scales
// multiply in int32, the zero points and mins come from the activations' 16-value sums by dpwssd, and the float step
// of every block is the definition's (cvt, dx·d, fma) lane by lane: each output gets exactly the portable path's
// operations, whatever MR or its place in the panel. Compiled for AVX-512 whatever the project's -march (as
// quant_avx512.cpp).
#include "unmask/kernels/quant_gemm_avx512.h"

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>
#include <utility>

#include "unmask/base/error.h"

#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,f16c,fma")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif



namespace unmask::avx512 {
namespace {

constexpr int kMaxRows = 8;  // rows of x per register tile

// The panel of one block: 64-byte vectors, in this order.
struct Layout {
  int codes, sc, z, m, d, e, vectors;  // first vector of each item; vectors per block
};
constexpr Layout layout(int block, int nsub, bool has_z, bool has_m) {
  Layout l{};
  l.codes = 0;
  l.sc = block / 4;
  l.z = l.sc + (nsub > 1 ? nsub : 0);
  l.m = l.z + (has_z ? block / 32 : 0);
  l.d = l.m + (has_m ? block / 32 : 0);
  l.e = l.d + 1;
  l.vectors = l.e + (has_m ? 1 : 0);
  return l;
}
Layout layout(const QuantFormat& f) { return layout(f.block, f.nsub, f.has_z, f.has_m); }

inline int32_t load32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Lane r of every item of block blk (decoded) into the panel block at p.
void scatter_row(const QuantFormat& f, const Layout& l, const QuantBlock& blk, int r, uint8_t* p) {
  auto at = [&](int vec) { return p + 64 * vec + 4 * r; };
  for (int i = 0; i < f.block / 4; ++i) std::memcpy(at(l.codes + i), blk.c + 4 * i, 4);
  if (f.nsub > 1)
    for (int j = 0; j < f.nsub; ++j) std::memcpy(at(l.sc + j), &blk.sc[j], 4);
  for (int q = 0; q < f.block / 32; ++q) {
    if (f.has_z) std::memcpy(at(l.z + q), &blk.z[2 * q], 4);
    if (f.has_m) std::memcpy(at(l.m + q), &blk.m[2 * q], 4);
  }
  std::memcpy(at(l.d), &blk.d, 4);
  if (f.has_m) std::memcpy(at(l.e), &blk.e, 4);
}

// Rows w (nr rows, stride rb) -> panel (nb blocks of l.vectors vectors); rows past nr are zero.
void pack(const QuantFormat& f, const Layout& l, const uint8_t* w, size_t rb, int nr, int nb, uint8_t* panel) {
  const size_t bb = size_t(dtype_info(f.type).block_bytes), stride = 64 * size_t(l.vectors);
  std::memset(panel, 0, stride * size_t(nb));
  QuantBlock blk;
  for (int r = 0; r < nr; ++r)
    for (int b = 0; b < nb; ++b) {
      f.decode(w + size_t(r) * rb + size_t(b) * bb, blk);
      scatter_row(f, l, blk, r, panel + size_t(b) * stride);
    }
}

template <int MR>
inline void zero(__m512 (&acc)[MR]) {
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
}

// Rows t0 .. t0+MR of a: their codes, scales and 16-value sums.
template <int MR>
struct TileRows {
  const int8_t* q[MR];
  const float* d[MR];
  const int16_t* s[MR];
  TileRows(const QuantizedActs& a, int t0) {
    for (int i = 0; i < MR; ++i) {
      q[i] = a.q.data() + size_t(t0 + i) * size_t(a.n);
      d[i] = a.d.data() + size_t(t0 + i) * size_t(a.n / 32);
      s[i] = a.sum16.data() + size_t(t0 + i) * size_t(a.n / 16);
    }
  }
};

// out (MR, 16 lanes masked) for rows t0 .. t0+MR of a over the whole panel: the definition, 16 outputs a vector.
template <int BLOCK, int NSUB, bool Z, bool M, int MR>
void tile(const uint8_t* panel, int nb, const QuantizedActs& a, int t0, float* out, int64_t ldo, __mmask16 keep) {
  constexpr int SUB = BLOCK / NSUB;
  constexpr Layout L = layout(BLOCK, NSUB, Z, M);
  const TileRows<MR> x(a, t0);
  __m512 acc[MR];
  zero(acc);
  for (int b = 0; b < nb; ++b) {
    const auto* p = reinterpret_cast<const __m512i*>(panel + size_t(b) * 64 * L.vectors);
    const int k0 = b * BLOCK;
    __m512i I[MR];
    for (int i = 0; i < MR; ++i) I[i] = _mm512_setzero_si512();
    for (int j = 0; j < NSUB; ++j) {
      __m512i s[MR];
      for (int i = 0; i < MR; ++i) s[i] = _mm512_setzero_si512();
      for (int g = 0; g < SUB / 4; ++g) {
        const __m512i wv = _mm512_load_si512(p + L.codes + j * SUB / 4 + g);
        for (int i = 0; i < MR; ++i)
          s[i] = _mm512_dpbusd_epi32(s[i], wv, _mm512_set1_epi32(load32(x.q[i] + k0 + j * SUB + 4 * g)));
      }
      if constexpr (NSUB == 1) {
        for (int i = 0; i < MR; ++i) I[i] = s[i];
      } else {
        const __m512i sc = _mm512_load_si512(p + L.sc + j);
        for (int i = 0; i < MR; ++i) I[i] = _mm512_add_epi32(I[i], _mm512_mullo_epi32(s[i], sc));
      }
    }
    if constexpr (Z)
      for (int q = 0; q < BLOCK / 32; ++q) {
        const __m512i zv = _mm512_load_si512(p + L.z + q);
        for (int i = 0; i < MR; ++i)
          I[i] = _mm512_dpwssd_epi32(I[i], zv, _mm512_set1_epi32(load32(x.s[i] + k0 / 16 + 2 * q)));
      }
    const __m512 d = _mm512_load_ps(p + L.d);
    for (int i = 0; i < MR; ++i)
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[i]), _mm512_mul_ps(_mm512_set1_ps(x.d[i][k0 / 32]), d), acc[i]);
    if constexpr (M) {
      __m512i J[MR];
      for (int i = 0; i < MR; ++i) J[i] = _mm512_setzero_si512();
      for (int q = 0; q < BLOCK / 32; ++q) {
        const __m512i mv = _mm512_load_si512(p + L.m + q);
        for (int i = 0; i < MR; ++i)
          J[i] = _mm512_dpwssd_epi32(J[i], mv, _mm512_set1_epi32(load32(x.s[i] + k0 / 16 + 2 * q)));
      }
      const __m512 e = _mm512_load_ps(p + L.e);
      for (int i = 0; i < MR; ++i)
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(J[i]), _mm512_mul_ps(_mm512_set1_ps(x.d[i][k0 / 32]), e), acc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(out + int64_t(t0 + i) * ldo, keep, acc[i]);
}

using TileFn = void (*)(const uint8_t*, int, const QuantizedActs&, int, float*, int64_t, __mmask16);

template <int BLOCK, int NSUB, bool Z, bool M, size_t... MR>
constexpr auto tiles(std::index_sequence<MR...>) {
  return std::array<TileFn, sizeof...(MR)>{tile<BLOCK, NSUB, Z, M, int(MR) + 1>...};
}

// ---- Weights repacked once (repack): the definition from the nibbles, no per-call panel ----

// The 32-value types: a group of 16 rows, block b: the codes (Q8_0: 8 vectors, lane r bytes 4g .. 4g+3 of row r's
// codes + 128; the others: 4 vectors of row r's qs bytes 4g .. 4g+3, low nibbles values 4g .., high 16 + 4g ..),
// Q5_0 / Q5_1: a vector of 5th bits (lane r: row r's qh), the 16 rows' f16 d, then Q4_1 / Q5_1 their f16 m: the raw
// blocks' size.
struct Packed32 {
  int code_vectors;  // 8: bytes; 4: nibbles
  bool qh, m;        // 5th bits; offsets m (e = +m, J = S_0 + S_1)
  int z;             // zero point of every value
  size_t d() const { return size_t(64 * code_vectors + (qh ? 64 : 0)); }
  size_t bytes() const { return d() + 32 + (m ? 32 : 0); }
};
constexpr Packed32 packed32(DType t) {
  switch (t) {
    case DType::Q8_0: return {8, false, false, -128};
    case DType::Q4_0: return {4, false, false, -8};
    case DType::Q4_1: return {4, false, true, 0};
    case DType::Q5_0: return {4, true, false, -16};
    default: return {4, true, true, 0};  // Q5_1
  }
}

// Q4_K and Q5_K: a group of 16 rows, block b: 32 vectors of codes, vector 8c + p holding bytes 32c + 4p .. +3 of
// each row's qs (low nibbles: sub-block 2c, values 4p .. 4p+3; high: sub-block 2c + 1); Q5_K: 8 vectors of 5th
// bits, vector p holding bytes 4p .. 4p+3 of each row's qh (bit j: sub-block j); the 8 sub-block scales as 16 bytes
// each (byte r: row r); the mins as 4 runs of 32 bytes (bytes 2r, 2r + 1: row r's mins of sub-blocks 2q, 2q + 1);
// the 16 rows' f16 d, then their f16 dmin: 2,368 bytes against the raw blocks' 2,304 (Q5_K: 2,880, 2,816).
struct PackedK {
  bool qh;
  size_t scales() const { return qh ? 2048 + 512 : 2048; }
  size_t mins() const { return scales() + 128; }
  size_t d() const { return mins() + 128; }
  size_t dmin() const { return d() + 32; }
  size_t bytes() const { return dmin() + 32; }
};
constexpr PackedK packed_k(DType t) { return {t == DType::Q5_K}; }

// Q6_K: a group of 16 rows, block b: 32 vectors of ql, vector 8c + p holding bytes 32c + 4p .. +3 of each row's ql;
// 16 vectors of qh, vector 8h + p holding bytes 32h + 4p .. +3 of each row's qh; the 16 sub-block scales as 16 bytes
// each (byte r: row r); the 16 rows' f16 d: the raw blocks' 3,360 bytes (padding each block to 3,392 so that every
// load is 64-byte aligned measured 5-9% slower decode: the bytes, not the split loads, are the limit).
constexpr size_t kQ6_KQh = 2048, kQ6_KScales = kQ6_KQh + 1024, kQ6_KD = kQ6_KScales + 256, kQ6_KPacked = kQ6_KD + 32;

inline __m512 load_f16x16(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Lane r, byte i of the result: bit 4 set where bit k + i of lane r of h is (the 5th bits of values k .. k+3).
inline __m512i fifth_bits(__m512i h, int k) {
  // (4 bits) · (1 + 2^7 + 2^14 + 2^21) puts bit i at 8i without carries
  const __m512i spread = _mm512_mullo_epi32(_mm512_and_si512(_mm512_srli_epi32(h, k), _mm512_set1_epi32(0xF)),
                                            _mm512_set1_epi32(0x204081));
  return _mm512_slli_epi32(_mm512_and_si512(spread, _mm512_set1_epi32(0x01010101)), 4);
}

template <DType T, int MR>
void tile_32(const uint8_t* panel, int nb, const QuantizedActs& a, int t0, float* out, int64_t ldo, __mmask16 keep) {
  constexpr Packed32 P = packed32(T);
  const TileRows<MR> x(a, t0);
  const __m512i m4 = _mm512_set1_epi8(0xF);
  __m512 acc[MR];
  zero(acc);
  for (int b = 0; b < nb; ++b) {
    const uint8_t* p = panel + size_t(b) * P.bytes();
    __m512i I[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)  // the zero points: z · (S_0 + S_1)
      I[i] = _mm512_set1_epi32(P.z * (int32_t(x.s[i][2 * b]) + x.s[i][2 * b + 1]));
    __m512i h = _mm512_setzero_si512();
    if constexpr (P.qh) h = _mm512_loadu_si512(p + 256);
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {  // values 4g .. 4g+3 (lo) and 16 + 4g .. (hi)
      __m512i lo, hi;
      if constexpr (P.code_vectors == 8) {
        lo = _mm512_loadu_si512(p + 64 * g), hi = _mm512_loadu_si512(p + 64 * (g + 4));
      } else {
        const __m512i v = _mm512_loadu_si512(p + 64 * g);
        lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        if constexpr (P.qh) lo = _mm512_or_si512(lo, fifth_bits(h, 4 * g)), hi = _mm512_or_si512(hi, fifth_bits(h, 16 + 4 * g));
      }
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        I[i] = _mm512_dpbusd_epi32(I[i], lo, _mm512_set1_epi32(load32(x.q[i] + 32 * b + 4 * g)));
        I[i] = _mm512_dpbusd_epi32(I[i], hi, _mm512_set1_epi32(load32(x.q[i] + 32 * b + 16 + 4 * g)));
      }
    }
    const __m512 d = load_f16x16(p + P.d());
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[i]), _mm512_mul_ps(_mm512_set1_ps(x.d[i][b]), d), acc[i]);
    if constexpr (P.m) {
      const __m512 e = load_f16x16(p + P.d() + 32);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512 J = _mm512_set1_ps(float(int32_t(x.s[i][2 * b]) + x.s[i][2 * b + 1]));
        acc[i] = _mm512_fmadd_ps(J, _mm512_mul_ps(_mm512_set1_ps(x.d[i][b]), e), acc[i]);
      }
    }
  }
  for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(out + int64_t(t0 + i) * ldo, keep, acc[i]);
}

template <DType T, int MR>
void tile_k(const uint8_t* panel, int nb, const QuantizedActs& a, int t0, float* out, int64_t ldo, __mmask16 keep) {
  constexpr PackedK P = packed_k(T);
  const TileRows<MR> x(a, t0);
  const __m512i m4 = _mm512_set1_epi8(0xF);
  __m512 acc[MR];
  zero(acc);
  for (int b = 0; b < nb; ++b) {
    const uint8_t* p = panel + size_t(b) * P.bytes();
    __m512i I[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) I[i] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {  // sub-block j: the low (j even) or high nibbles of vectors 8 (j / 2) ..
      __m512i s[MR];
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) s[i] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int g = 0; g < 8; ++g) {
        const __m512i v = _mm512_load_si512(p + 64 * (8 * (j / 2) + g));
        __m512i c = _mm512_and_si512(j % 2 == 0 ? v : _mm512_srli_epi16(v, 4), m4);
        if constexpr (P.qh) {  // bit j of each qh byte to bit 4
          const __m512i h = _mm512_load_si512(p + 2048 + 64 * g);
          const __m512i at4 = j <= 4 ? _mm512_slli_epi32(h, 4 - j) : _mm512_srli_epi32(h, j - 4);
          c = _mm512_or_si512(c, _mm512_and_si512(at4, _mm512_set1_epi8(0x10)));
        }
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i)
          s[i] = _mm512_dpbusd_epi32(s[i], c, _mm512_set1_epi32(load32(x.q[i] + 256 * b + 32 * j + 4 * g)));
      }
      const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + P.scales() + 16 * j)));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) I[i] = _mm512_add_epi32(I[i], _mm512_mullo_epi32(s[i], sc));
    }
    const __m512 d = load_f16x16(p + P.d());
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[i]), _mm512_mul_ps(_mm512_set1_ps(x.d[i][8 * b]), d), acc[i]);
    __m512i J[MR];  // the mins: Σ_j m_j · (S_2j + S_2j+1), two sub-blocks per dpwssd
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) J[i] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const __m512i m =
          _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + P.mins() + 32 * q)));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const int16_t* s = x.s[i] + 16 * b + 4 * q;
        const uint32_t pair = uint16_t(s[0] + s[1]) | uint32_t(uint16_t(s[2] + s[3])) << 16;
        J[i] = _mm512_dpwssd_epi32(J[i], m, _mm512_set1_epi32(int32_t(pair)));
      }
    }
    const __m512 e = _mm512_sub_ps(_mm512_setzero_ps(), load_f16x16(p + P.dmin()));  // e = -dmin
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(J[i]), _mm512_mul_ps(_mm512_set1_ps(x.d[i][8 * b]), e), acc[i]);
  }
  for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(out + int64_t(t0 + i) * ldo, keep, acc[i]);
}

// Sub-block j of 16 values: half h = j / 8 (128 values), quarter q = (j % 8) / 2 (its 32), j % 2 the 16 of those:
// low 4 bits from ql chunk 2h + q % 2 (low nibbles for q < 2), bits 4-5 from bits 2q, 2q + 1 of qh chunk h.
template <int MR>
void tile_q6_k(const uint8_t* panel, int nb, const QuantizedActs& a, int t0, float* out, int64_t ldo, __mmask16 keep) {
  const TileRows<MR> x(a, t0);
  const __m512i m4 = _mm512_set1_epi8(0xF), m30 = _mm512_set1_epi8(0x30);
  __m512 acc[MR];
  zero(acc);
  for (int b = 0; b < nb; ++b) {
    const uint8_t* p = panel + size_t(b) * kQ6_KPacked;
    __m512i I[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) I[i] = _mm512_setzero_si512();
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) {
      const int h = j / 8, q = (j % 8) / 2;
      __m512i s[MR];
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) s[i] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) {
        const int v = 4 * (j % 2) + g;
        const __m512i l = _mm512_loadu_si512(p + 64 * (8 * (2 * h + q % 2) + v));  // (64-byte aligned every other)
        const __m512i hb = _mm512_loadu_si512(p + kQ6_KQh + 64 * (8 * h + v));
        const __m512i at4 = q <= 2 ? _mm512_slli_epi32(hb, 4 - 2 * q) : _mm512_srli_epi32(hb, 2 * q - 4);
        const __m512i c = _mm512_or_si512(_mm512_and_si512(q < 2 ? l : _mm512_srli_epi16(l, 4), m4),
                                          _mm512_and_si512(at4, m30));
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i)
          s[i] = _mm512_dpbusd_epi32(s[i], c, _mm512_set1_epi32(load32(x.q[i] + 256 * b + 16 * j + 4 * g)));
      }
      const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kQ6_KScales + 16 * j)));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i)  // sc_j · (Σ c·q - 32 S_j): the zero point -32·sc_j
        I[i] = _mm512_add_epi32(
            I[i], _mm512_mullo_epi32(_mm512_sub_epi32(s[i], _mm512_set1_epi32(32 * int32_t(x.s[i][16 * b + j]))), sc));
    }
    const __m512 d = load_f16x16(p + kQ6_KD);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(I[i]), _mm512_mul_ps(_mm512_set1_ps(x.d[i][8 * b]), d), acc[i]);
  }
  for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(out + int64_t(t0 + i) * ldo, keep, acc[i]);
}

template <DType T, int MR>
void packed_tile(const uint8_t* panel, int nb, const QuantizedActs& a, int t0, float* out, int64_t ldo,
                 __mmask16 keep) {
  if constexpr (T == DType::Q4_K || T == DType::Q5_K) tile_k<T, MR>(panel, nb, a, t0, out, ldo, keep);
  else if constexpr (T == DType::Q6_K) tile_q6_k<MR>(panel, nb, a, t0, out, ldo, keep);
  else tile_32<T, MR>(panel, nb, a, t0, out, ldo, keep);
}

template <DType T, size_t... MR>
constexpr auto packed_tiles(std::index_sequence<MR...>) {
  return std::array<TileFn, sizeof...(MR)>{packed_tile<T, int(MR) + 1>...};
}

// Row r's block blk into the repacked block p.
void repack_row(const BlockQ8_0& blk, int r, uint8_t* p) {
  for (int g = 0; g < 8; ++g) {  // + 128: the sign bit flipped, 4 codes at a time
    const uint32_t c = load32(blk.qs + 4 * g) ^ 0x80808080u;
    std::memcpy(p + 64 * g + 4 * r, &c, 4);
  }
  std::memcpy(p + packed32(DType::Q8_0).d() + 2 * r, &blk.d, 2);
}
template <typename Block>  // Q4_0, Q4_1, Q5_0, Q5_1
void repack_row(const Block& blk, int r, uint8_t* p) {
  constexpr DType T = std::is_same_v<Block, BlockQ4_0>   ? DType::Q4_0
                      : std::is_same_v<Block, BlockQ4_1> ? DType::Q4_1
                      : std::is_same_v<Block, BlockQ5_0> ? DType::Q5_0
                                                         : DType::Q5_1;
  constexpr Packed32 P = packed32(T);
  for (int g = 0; g < 4; ++g) std::memcpy(p + 64 * g + 4 * r, blk.qs + 4 * g, 4);
  if constexpr (P.qh) std::memcpy(p + 256 + 4 * r, blk.qh, 4);
  std::memcpy(p + P.d() + 2 * r, &blk.d, 2);
  if constexpr (P.m) std::memcpy(p + P.d() + 32 + 2 * r, &blk.m, 2);
}
template <typename Block>  // Q4_K, Q5_K
void repack_row_k(const Block& blk, int r, uint8_t* p) {
  constexpr PackedK P = packed_k(std::is_same_v<Block, BlockQ5_K> ? DType::Q5_K : DType::Q4_K);
  for (int v = 0; v < 32; ++v) std::memcpy(p + 64 * v + 4 * r, blk.qs + 32 * (v / 8) + 4 * (v % 8), 4);
  if constexpr (P.qh)
    for (int v = 0; v < 8; ++v) std::memcpy(p + 2048 + 64 * v + 4 * r, blk.qh + 4 * v, 4);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    scale_min_k4(j, blk.scales, sc, m);
    p[P.scales() + 16 * j + r] = uint8_t(sc);
    p[P.mins() + 32 * (j / 2) + 2 * r + j % 2] = uint8_t(m);
  }
  std::memcpy(p + P.d() + 2 * r, &blk.d, 2);
  std::memcpy(p + P.dmin() + 2 * r, &blk.dmin, 2);
}
void repack_row(const BlockQ4_K& blk, int r, uint8_t* p) { repack_row_k(blk, r, p); }
void repack_row(const BlockQ5_K& blk, int r, uint8_t* p) { repack_row_k(blk, r, p); }
void repack_row(const BlockQ6_K& blk, int r, uint8_t* p) {
  for (int v = 0; v < 32; ++v) std::memcpy(p + 64 * v + 4 * r, blk.ql + 4 * v, 4);
  for (int v = 0; v < 16; ++v) std::memcpy(p + kQ6_KQh + 64 * v + 4 * r, blk.qh + 4 * v, 4);
  for (int j = 0; j < 16; ++j) p[kQ6_KScales + 16 * j + r] = uint8_t(blk.scales[j]);
  std::memcpy(p + kQ6_KD + 2 * r, &blk.d, 2);
}

template <typename Block>
void repack_blocks(const uint8_t* w, size_t rb, int rows, int nb, size_t bytes, uint8_t* dst) {
  const int groups = (rows + kQuantGemmRows - 1) / kQuantGemmRows;
#pragma omp parallel for schedule(static)
  for (int gi = 0; gi < groups; ++gi) {
    const int g0 = gi * kQuantGemmRows;
    uint8_t* group = dst + size_t(gi) * size_t(nb) * bytes;  // (IC/32 · 544 bytes for Q8_0: in L1 or L2)
    if (g0 + kQuantGemmRows > rows) std::memset(group, 0, size_t(nb) * bytes);  // rows past `rows`: zero
    for (int r = 0; r < kQuantGemmRows && g0 + r < rows; ++r) {  // each row read as one stream
      const auto* row = reinterpret_cast<const Block*>(w + size_t(g0 + r) * rb);
      for (int b = 0; b < nb; ++b) repack_row(row[b], r, group + size_t(b) * bytes);
    }
  }
}

// The tiles of every format shape the table of quant_gemm.cpp uses: (block, sub-blocks, zero points, mins).
TileFn tile_for(const QuantFormat& f, int mr) {
  constexpr auto kSym32 = tiles<32, 1, true, false>(std::make_index_sequence<kMaxRows>());
  constexpr auto kMin32 = tiles<32, 1, false, true>(std::make_index_sequence<kMaxRows>());
  constexpr auto kMin256x8 = tiles<256, 8, false, true>(std::make_index_sequence<kMaxRows>());
  constexpr auto kMin256x16 = tiles<256, 16, false, true>(std::make_index_sequence<kMaxRows>());
  constexpr auto kSym256x16 = tiles<256, 16, true, false>(std::make_index_sequence<kMaxRows>());
  const int i = mr - 1;
  if (f.block == 32 && f.nsub == 1) return f.has_z && !f.has_m ? kSym32[i] : !f.has_z && f.has_m ? kMin32[i] : nullptr;
  if (f.block == 256 && !f.has_z && f.has_m) return f.nsub == 8 ? kMin256x8[i] : f.nsub == 16 ? kMin256x16[i] : nullptr;
  if (f.block == 256 && f.nsub == 16 && f.has_z && !f.has_m) return kSym256x16[i];
  return nullptr;
}

// The tree of reduce16 (gemm.h): lanes i + 8, then i + 4, then i + 2, then the two.
inline float reduce16(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  const __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  const __m128 r = _mm_add_ps(q, _mm_movehl_ps(q, q));
  return _mm_cvtss_f32(_mm_add_ss(r, _mm_shuffle_ps(r, r, 1)));
}

// 16 values of a row of type T from k on (masked, zeros past the mask) as f32.
template <DType T>
inline __m512 load_row(const uint8_t* row, int k, __mmask16 m) {
  if constexpr (T == DType::F32) return _mm512_maskz_loadu_ps(m, reinterpret_cast<const float*>(row) + k);
  const __m256i h = _mm256_maskz_loadu_epi16(m, reinterpret_cast<const uint16_t*>(row) + k);
  if constexpr (T == DType::F16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// acc[i][r] += x (MR rows) · w (NR rows) over the 16 columns from k on under mask m (zeros past it).
template <DType T, int MR, int NR>
inline void lane_step(const uint8_t* w, size_t rb, const float* x, int64_t ldx, int k, __mmask16 m,
                      __m512 (&acc)[MR][NR]) {
  __m512 wv[NR];
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
    wv[r] = load_row<T>(w + size_t(r) * rb, k, m);
    __asm__("" : "+v"(wv[r]));  // f32 rows: loaded once, not again for each FMA
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    __m512 xv = _mm512_maskz_loadu_ps(m, x + i * ldx + k);
    __asm__("" : "+v"(xv));  // one load kept in a register for the NR FMAs: g++ folds it into each of them
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_fmadd_ps(wv[r], xv, acc[i][r]);
  }
}

// out (MR, NR) = x (MR rows) · w (NR rows)ᵀ, each output 16 lanes of FMAs over k, then reduce16.
template <DType T, int MR, int NR>
void lane_tile(const uint8_t* w, size_t rb, const float* x, int64_t ldx, int K, float* out, int64_t ldo) {
  __m512 acc[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) acc[i][r] = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) lane_step<T, MR, NR>(w, rb, x, ldx, k, __mmask16(0xFFFF), acc);
  if (k < K) lane_step<T, MR, NR>(w, rb, x, ldx, k, __mmask16((1u << (K - k)) - 1u), acc);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) out[i * ldo + r] = reduce16(acc[i][r]);
}

using LaneFn = void (*)(const uint8_t*, size_t, const float*, int64_t, int, float*, int64_t);
constexpr int kLaneX = 6, kLaneW = 4;  // rows of x and of w per tile: 24 accumulators, 4 weights, 1 x (29 zmm)

template <DType T, size_t... I>
constexpr auto lane_tiles(std::index_sequence<I...>) {
  return std::array<LaneFn, sizeof...(I)>{lane_tile<T, int(I) / kLaneW + 1, int(I) % kLaneW + 1>...};
}

LaneFn lane_for(DType t, int mr, int nr) {
  constexpr auto kF32 = lane_tiles<DType::F32>(std::make_index_sequence<kLaneX * kLaneW>());
  constexpr auto kF16 = lane_tiles<DType::F16>(std::make_index_sequence<kLaneX * kLaneW>());
  constexpr auto kBF16 = lane_tiles<DType::BF16>(std::make_index_sequence<kLaneX * kLaneW>());
  const int i = (mr - 1) * kLaneW + nr - 1;
  return t == DType::F32 ? kF32[i] : t == DType::F16 ? kF16[i] : kBF16[i];
}

}  // namespace

void lane_gemm(DType t, const uint8_t* w, size_t rb, int nr, const float* x, int64_t ldx, int T, int k, float* out,
               int64_t ldo) {
  // One row of x (decode): the weight rows one after another, a single stream the prefetcher follows (four rows
  // side by side read at a quarter of the bandwidth). More: a tile of x stays in L1 while the weight rows pass.
  const int step = T == 1 ? 1 : kLaneW;
  for (int t0 = 0; t0 < T; t0 += kLaneX)
    for (int r0 = 0; r0 < nr; r0 += step) {
      const int mr = T - t0 < kLaneX ? T - t0 : kLaneX, n = nr - r0 < step ? nr - r0 : step;
      lane_for(t, mr, n)(w + size_t(r0) * rb, rb, x + t0 * ldx, ldx, k, out + t0 * ldo + r0, ldo);
    }
}

size_t packed_block_bytes(DType t) {
  switch (t) {
    case DType::Q8_0: case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: return packed32(t).bytes();
    case DType::Q4_K: case DType::Q5_K: return packed_k(t).bytes();
    case DType::Q6_K: return kQ6_KPacked;
    default: return 0;
  }
}

void repack(DType t, const uint8_t* w, size_t rb, int rows, int nb, uint8_t* dst) {
  const size_t bytes = packed_block_bytes(t);
  switch (t) {
    case DType::Q8_0: return repack_blocks<BlockQ8_0>(w, rb, rows, nb, bytes, dst);
    case DType::Q4_0: return repack_blocks<BlockQ4_0>(w, rb, rows, nb, bytes, dst);
    case DType::Q4_1: return repack_blocks<BlockQ4_1>(w, rb, rows, nb, bytes, dst);
    case DType::Q5_0: return repack_blocks<BlockQ5_0>(w, rb, rows, nb, bytes, dst);
    case DType::Q5_1: return repack_blocks<BlockQ5_1>(w, rb, rows, nb, bytes, dst);
    case DType::Q4_K: return repack_blocks<BlockQ4_K>(w, rb, rows, nb, bytes, dst);
    case DType::Q5_K: return repack_blocks<BlockQ5_K>(w, rb, rows, nb, bytes, dst);
    case DType::Q6_K: return repack_blocks<BlockQ6_K>(w, rb, rows, nb, bytes, dst);
    default: fail("repack: {} is not repacked", dtype_name(t));
  }
}

void packed_group(DType t, const uint8_t* panel, int nr, const QuantizedActs& a, float* out, int64_t ldo) {
  constexpr auto seq = std::make_index_sequence<kMaxRows>();
  constexpr std::array<std::array<TileFn, kMaxRows>, 8> kTiles = {
      packed_tiles<DType::Q8_0>(seq), packed_tiles<DType::Q4_0>(seq), packed_tiles<DType::Q4_1>(seq),
      packed_tiles<DType::Q5_0>(seq), packed_tiles<DType::Q5_1>(seq), packed_tiles<DType::Q4_K>(seq),
      packed_tiles<DType::Q5_K>(seq), packed_tiles<DType::Q6_K>(seq)};
  constexpr DType kTypes[] = {DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                              DType::Q5_1, DType::Q4_K, DType::Q5_K, DType::Q6_K};
  const auto* it = std::find(std::begin(kTypes), std::end(kTypes), t);
  check(it != std::end(kTypes), "packed_group: {} is not repacked", dtype_name(t));
  const auto& tiles = kTiles[size_t(it - std::begin(kTypes))];
  const int nb = a.n / dtype_info(t).block_size;
  const __mmask16 keep = __mmask16((1u << nr) - 1u);
  for (int t0 = 0; t0 < a.T; t0 += kMaxRows) {
    const int mr = a.T - t0 < kMaxRows ? a.T - t0 : kMaxRows;
    tiles[size_t(mr - 1)](panel, nb, a, t0, out, ldo, keep);
  }
}

void quant_gemm_group(const QuantFormat& f, const uint8_t* w, size_t rb, int nr, const QuantizedActs& a, float* out,
                      int64_t ldo, std::vector<uint8_t>& buf) {
  const Layout l = layout(f);
  const int nb = a.n / f.block;
  const size_t bytes = 64 * size_t(l.vectors) * size_t(nb);
  if (buf.size() < bytes + 64) buf.resize(bytes + 64);
  auto* panel = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  pack(f, l, w, rb, nr, nb, panel);
  const __mmask16 keep = __mmask16((1u << nr) - 1u);
  check(tile_for(f, 1) != nullptr, "quant_gemm: no AVX-512 tile for the shape of {}", dtype_name(f.type));
  for (int t0 = 0; t0 < a.T; t0 += kMaxRows) {
    const int mr = a.T - t0 < kMaxRows ? a.T - t0 : kMaxRows;
    tile_for(f, mr)(panel, nb, a, t0, out, ldo, keep);
  }
}

}  // namespace unmask::avx512

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
