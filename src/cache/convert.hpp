// Scalar conversions between float and every rpa_dtype: the definition of
// what the cache stores. Vector kernels must agree with these bit for bit on
// decode (which is exact) and use them, or an equivalent, on encode.
//
// Internal linkage on purpose: this header is compiled into every per-ISA
// translation unit, and an inline function with external linkage built with
// -mavx512f in one unit could be the copy the linker keeps for all of them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/dtype.hpp"

namespace rpa {
namespace {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- decode: stored bits -> float (exact for every type) ----

inline float bf16_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }

inline float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp_mant = h & 0x7fff;
  if (exp_mant >= 0x7c00) return bits_float(sign | 0x7f800000 | ((exp_mant & 0x3ff) << 13));
  // Normals: rebias the exponent (15 -> 127) under float's. Subnormals:
  // mantissa * 2^-24, computed on integers so a caller's DAZ mode is harmless.
  const float magnitude = exp_mant < 0x400 ? float(exp_mant) * 0x1p-24f
                                           : bits_float((exp_mant << 13) + ((127u - 15) << 23));
  return bits_float(float_bits(magnitude) | sign);
}

// OCP e4m3fn: bias 7, no infinities, S.1111.111 is NaN.
inline float e4m3_to_float(uint8_t b) {
  const uint32_t sign = uint32_t(b & 0x80) << 24;
  const uint32_t exp_mant = b & 0x7f;
  if (exp_mant == 0x7f) return bits_float(sign | 0x7fc00000);
  const float magnitude = exp_mant < 8 ? float(exp_mant) * 0x1p-9f
                                       : bits_float((exp_mant << 20) + ((127u - 7) << 23));
  return bits_float(float_bits(magnitude) | sign);
}

// OCP e5m2 is the upper byte of an IEEE half.
inline float e5m2_to_float(uint8_t b) { return f16_to_float(uint16_t(b) << 8); }

inline float int8_to_float(uint8_t b) { return float(int8_t(b)); }

// ---- encode: float -> stored bits, round to nearest even ----

inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fff + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

// Overflow gives infinity, as an IEEE cast does.
inline uint16_t float_to_f16(float f) {
  const uint32_t f32_inf = 255u << 23;
  const uint32_t f16_overflow = (127u + 16) << 23;             // 65536: rounds past 65504
  const uint32_t denorm_magic = ((127u - 15) + (23 - 10) + 1) << 23;
  uint32_t u = float_bits(f);
  const uint32_t sign = u & 0x80000000u;
  u ^= sign;
  uint16_t out;
  if (u >= f16_overflow) {
    out = u > f32_inf ? 0x7e00 : 0x7c00;
  } else if (u < (113u << 23)) {
    // A half subnormal: adding 0.5 * 2^-14 lets the FPU's own round-to-even
    // place the bits, then the magic is subtracted back off.
    out = uint16_t(float_bits(bits_float(u) + bits_float(denorm_magic)) - denorm_magic);
  } else {
    const uint32_t mant_odd = (u >> 13) & 1;
    u += ((15u - 127u) << 23) + 0xfff;
    u += mant_odd;
    out = uint16_t(u >> 13);
  }
  return uint16_t(out | (sign >> 16));
}

// The code (sign excluded) of a > 0, finite, rounded to nearest even in a
// binary format with kMant fraction bits and exponent bias kBias (subnormals
// below 2^(1 - kBias)). Normals round on the double's bits: adding half a
// quantum less one, plus the kept part's lowest bit, carries into the kept
// bits exactly when RNE rounds up (into the exponent too, which is right);
// subnormals are whole multiples of the smallest one, rounded by nearbyint of
// an exact power-of-two product. The one rounding is this one. A value past
// the format's largest finite gives a code past that one's (callers clamp: to
// the largest finite when saturating, to infinity otherwise). Against a
// general shift-and-compare rounding, 2048 e4m3 tokens were written in 0.61
// of the time (rpa-bench --token-io).
constexpr double pow2(int n) {
  double r = 1.0;
  for (; n > 0; --n) r *= 2.0;
  for (; n < 0; ++n) r *= 0.5;
  return r;
}

template <int kMant, int kBias>
inline uint32_t encode_rne(double a) {
  constexpr double kMinNormal = pow2(1 - kBias), kToSubnormalUnits = pow2(kBias - 1 + kMant);
  if (a < kMinNormal) return uint32_t(std::nearbyint(a * kToSubnormalUnits));
  constexpr int kDrop = 52 - kMant;
  uint64_t bits;
  std::memcpy(&bits, &a, 8);
  bits += (uint64_t(1) << (kDrop - 1)) - 1 + ((bits >> kDrop) & 1);
  return uint32_t(bits >> kDrop) - (uint32_t(1023 - kBias) << kMant);
}

inline uint8_t double_to_fp8(double x, bool e4m3) {
  if (std::isnan(x)) return 0x7f;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const uint32_t max_code = e4m3 ? 0x7e : 0x7b;  // 448 and 57344: saturate there
  const double a = std::fabs(x);
  if (a == 0) return sign;
  if (std::isinf(a)) return uint8_t(sign | max_code);
  const uint32_t code = e4m3 ? encode_rne<3, 7>(a) : encode_rne<2, 15>(a);
  return uint8_t(sign | (code < max_code ? code : max_code));
}

inline uint8_t double_to_int8(double x) {
  if (std::isnan(x)) return 0;
  double q = std::nearbyint(x);
  if (q > 127) q = 127;
  if (q < -127) q = -127;
  return uint8_t(int8_t(q));
}

// Store x / scale in `type` (scale > 0; 1 means none). The division is done in
// double so that the only rounding is the one into the stored type.
inline void encode_scaled(float x, float scale, rpa_dtype type, void* dst) {
  if (scale == 1.0f) {
    switch (type) {
      case RPA_F32: std::memcpy(dst, &x, 4); return;
      case RPA_BF16: { const uint16_t h = float_to_bf16(x); std::memcpy(dst, &h, 2); return; }
      case RPA_F16: { const uint16_t h = float_to_f16(x); std::memcpy(dst, &h, 2); return; }
      default: break;
    }
  }
  const double q = scale == 1.0f ? double(x) : double(x) / double(scale);
  switch (type) {
    case RPA_F32: { const float f = float(q); std::memcpy(dst, &f, 4); return; }
    case RPA_BF16:
    case RPA_F16: {
      // Round once, from the exact quotient, to the 16-bit format; values that
      // round past its largest finite become infinity as in an IEEE cast.
      const bool bf16 = type == RPA_BF16;
      const uint16_t inf = bf16 ? 0x7f80 : 0x7c00;
      const uint16_t sign = std::signbit(q) ? 0x8000 : 0;
      const double a = std::fabs(q);
      uint16_t h;
      if (std::isnan(q)) {
        h = bf16 ? 0x7fc0 : 0x7e00;
      } else if (std::isinf(a)) {
        h = uint16_t(sign | inf);
      } else {
        const uint32_t code = a == 0 ? 0 : bf16 ? encode_rne<7, 127>(a) : encode_rne<10, 15>(a);
        h = uint16_t(sign | (code < inf ? code : inf));
      }
      std::memcpy(dst, &h, 2);
      return;
    }
    case RPA_FP8_E4M3: *static_cast<uint8_t*>(dst) = double_to_fp8(q, true); return;
    case RPA_FP8_E5M2: *static_cast<uint8_t*>(dst) = double_to_fp8(q, false); return;
    case RPA_INT8: *static_cast<uint8_t*>(dst) = double_to_int8(q); return;
  }
}

inline float decode_element(const void* src, rpa_dtype type) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  switch (type) {
    case RPA_F32: { float f; std::memcpy(&f, p, 4); return f; }
    case RPA_BF16: { uint16_t h; std::memcpy(&h, p, 2); return bf16_to_float(h); }
    case RPA_F16: { uint16_t h; std::memcpy(&h, p, 2); return f16_to_float(h); }
    case RPA_FP8_E4M3: return e4m3_to_float(*p);
    case RPA_FP8_E5M2: return e5m2_to_float(*p);
    case RPA_INT8: return int8_to_float(*p);
  }
  return 0;
}

// An activation element (f32, bf16 or f16) as float, and back with RNE.
inline float load_act(const void* base, size_t index, rpa_dtype act) {
  return decode_element(static_cast<const uint8_t*>(base) + index * dtype_size(act), act);
}
inline void store_act(void* base, size_t index, rpa_dtype act, float x) {
  encode_scaled(x, 1.0f, act, static_cast<uint8_t*>(base) + index * dtype_size(act));
}
// base[index + i] = x[i] * scale for i < n, element by element.
inline void store_act_elements(void* base, size_t index, rpa_dtype act, const float* x, float scale,
                               int32_t n) {
  for (int32_t i = 0; i < n; ++i) store_act(base, index + size_t(i), act, x[i] * scale);
}

}  // namespace
}  // namespace rpa
