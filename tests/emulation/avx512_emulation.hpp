// AVX-512 intrinsics for a CPU without AVX-512, for test builds only
// (cmake -DRPA_EMULATE_AVX512_AMX=ON): the avx512, avx512_bf16 and amx kernel units
// include this instead of <immintrin.h>, so their logic (masks, lane counts,
// gathers of runs, the 16-lane tails) runs and is checked by the whole suite
// on an AVX2 machine. SIMDe (Debian's libsimde-dev) supplies nearly all of
// them in portable code; the few that SIMDe 0.7.4 lacks are written out below,
// lane by lane, with the instruction's semantics. Timings of such a build mean
// nothing.
#pragma once

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#include <cstdint>
#include <cstring>

namespace rpa_avx512_emulation {

inline float reduce_max_ps(simde__m512 x) {
  float v[16];
  simde_mm512_storeu_ps(v, x);
  float m = v[0];
  for (int i = 1; i < 16; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

// Halves added pairwise, as GCC's _mm512_reduce_add_ps does.
inline float reduce_add_ps(simde__m512 x) {
  float v[16];
  simde_mm512_storeu_ps(v, x);
  for (int w = 8; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) v[i] += v[i + w];
  return v[0];
}

// Each lane of x (N lanes of type From) converted to type To, as a vector of
// type Out: the element conversions of C++ (integers truncated or extended
// by sign or zero as From's signedness says, ints to float rounded).
template <class From, class To, class Out, class In>
inline Out convert_lanes(In x) {
  constexpr int n = int(sizeof(In) / sizeof(From));
  static_assert(sizeof(Out) == n * sizeof(To), "lane counts differ");
  From v[n];
  To r[n];
  std::memcpy(v, &x, sizeof(v));
  for (int i = 0; i < n; ++i) r[i] = To(v[i]);
  Out out;
  std::memcpy(&out, r, sizeof(out));
  return out;
}

// Truncates each 32-bit lane to 16 bits.
inline simde__m256i cvtepi32_epi16(simde__m512i x) {
  return convert_lanes<int32_t, int16_t, simde__m256i>(x);
}

inline simde__m512 cvtph_ps(simde__m256i halves) {
  uint16_t v[16];
  float r[16];
  simde_mm256_storeu_si256(v, halves);
  for (int i = 0; i < 16; ++i) r[i] = _cvtsh_ss(v[i]);  // F16C, which the AVX2 path needs too
  return simde_mm512_loadu_ps(r);
}

// Each float to a half, rounded to nearest even (F16C, lane by lane); the
// rounding argument is always _MM_FROUND_TO_NEAREST_INT here.
inline simde__m256i cvtps_ph(simde__m512 x, int) {
  float v[16];
  uint16_t r[16];
  simde_mm512_storeu_ps(v, x);
  for (int i = 0; i < 16; ++i) r[i] = _cvtss_sh(v[i], 0);
  return simde_mm256_loadu_si256(r);
}

inline simde__m512 cvtepi32_ps(simde__m512i x) { return convert_lanes<int32_t, float, simde__m512>(x); }

inline simde__m512i srai_epi32(simde__m512i x, unsigned shift) {
  int32_t v[16];
  simde_mm512_storeu_si512(v, x);
  for (int i = 0; i < 16; ++i) v[i] = shift > 31 ? (v[i] < 0 ? -1 : 0) : v[i] >> shift;
  return simde_mm512_loadu_si512(v);
}

// The mask of the lanes (of type Lane) where pred(a, b) holds.
template <class Lane, class Pred>
inline uint32_t lane_mask(simde__m512i a, simde__m512i b, Pred pred) {
  constexpr int n = 64 / sizeof(Lane);
  Lane x[n], y[n];
  simde_mm512_storeu_si512(x, a);
  simde_mm512_storeu_si512(y, b);
  uint32_t k = 0;
  for (int i = 0; i < n; ++i) k |= (pred(x[i], y[i]) ? 1u : 0u) << i;
  return k;
}

inline simde__mmask16 cmplt_epi32_mask(simde__m512i a, simde__m512i b) {
  return simde__mmask16(lane_mask<int32_t>(a, b, [](int32_t x, int32_t y) { return x < y; }));
}

// Reads only the lanes the mask selects, as the instruction does: the kernels
// rely on it at the end of a page or of the cache.
inline simde__m512i maskz_loadu_epi32(simde__mmask16 k, const void* p) {
  int32_t r[16];
  for (int i = 0; i < 16; ++i) {
    r[i] = 0;
    if (k & (1u << i)) std::memcpy(&r[i], static_cast<const char*>(p) + 4 * i, 4);
  }
  return simde_mm512_loadu_si512(r);
}

// Each float rounded to nearest-even bf16 (NaN stays a quiet NaN), 16 halves;
// as the SDM says of vcvtneps2bf16, a subnormal input becomes a zero of its sign.
inline simde__m256bh cvtneps_pbh(simde__m512 x) {
  float v[16];
  uint16_t r[16];
  simde_mm512_storeu_ps(v, x);
  for (int i = 0; i < 16; ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    r[i] = (u & 0x7fffffffu) > 0x7f800000u ? uint16_t((u >> 16) | 0x40u)
           : (u & 0x7f800000u) == 0        ? uint16_t((u >> 16) & 0x8000u)
                                           : uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  simde__m256bh h;
  std::memcpy(&h, r, sizeof(h));
  return h;
}

// Two vectors of floats rounded to bf16 (as cvtneps_pbh): b's in halves 0-15, a's in 16-31.
inline simde__m512bh cvtne2ps_pbh(simde__m512 a, simde__m512 b) {
  const simde__m256bh lo = cvtneps_pbh(b), hi = cvtneps_pbh(a);
  simde__m512bh r;
  std::memcpy(&r, &lo, 32);
  std::memcpy(reinterpret_cast<char*>(&r) + 32, &hi, 32);
  return r;
}

// 16 bytes sign-extended to 16 32-bit lanes.
inline simde__m512i cvtepi8_epi32(simde__m128i x) {
  return convert_lanes<int8_t, int32_t, simde__m512i>(x);
}

// 32 bytes zero-extended to 32 16-bit lanes.
inline simde__m512i cvtepu8_epi16(simde__m256i x) {
  return convert_lanes<uint8_t, uint16_t, simde__m512i>(x);
}

// 16 16-bit lanes zero-extended to 16 32-bit lanes.
inline simde__m512i cvtepu16_epi32(simde__m256i x) {
  return convert_lanes<uint16_t, uint32_t, simde__m512i>(x);
}

// Masks of 32 16-bit lanes: unsigned a < b, and a == b.
inline simde__mmask32 cmplt_epu16_mask(simde__m512i a, simde__m512i b) {
  return lane_mask<uint16_t>(a, b, [](uint16_t x, uint16_t y) { return x < y; });
}
inline simde__mmask32 cmpeq_epi16_mask(simde__m512i a, simde__m512i b) {
  return lane_mask<uint16_t>(a, b, [](uint16_t x, uint16_t y) { return x == y; });
}

}  // namespace rpa_avx512_emulation

#define _mm512_reduce_max_ps rpa_avx512_emulation::reduce_max_ps
#define _mm512_reduce_add_ps rpa_avx512_emulation::reduce_add_ps
#define _mm512_cvtepi32_epi16 rpa_avx512_emulation::cvtepi32_epi16
#define _mm512_cvtph_ps rpa_avx512_emulation::cvtph_ps
#define _mm512_cvtps_ph rpa_avx512_emulation::cvtps_ph
#define _mm512_cvtepi32_ps rpa_avx512_emulation::cvtepi32_ps
#define _mm512_srai_epi32 rpa_avx512_emulation::srai_epi32
#define _mm512_cmplt_epi32_mask rpa_avx512_emulation::cmplt_epi32_mask
#define _mm512_maskz_loadu_epi32 rpa_avx512_emulation::maskz_loadu_epi32
#define _mm512_cvtneps_pbh rpa_avx512_emulation::cvtneps_pbh
#define _mm512_cvtepu8_epi16 rpa_avx512_emulation::cvtepu8_epi16
#define _mm512_cvtne2ps_pbh rpa_avx512_emulation::cvtne2ps_pbh
#define _mm512_cvtepi8_epi32 rpa_avx512_emulation::cvtepi8_epi32
#define _mm512_cmplt_epu16_mask rpa_avx512_emulation::cmplt_epu16_mask
#define _mm512_cmpeq_epi16_mask rpa_avx512_emulation::cmpeq_epi16_mask
#define _mm512_cvtepu16_epi32 rpa_avx512_emulation::cvtepu16_epi32
