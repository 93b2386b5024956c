// Facts about rpa_dtype values, shared by validation, layout and kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "rpa/rpa.h"

namespace rpa {
namespace {

// An rpa_dtype field as the caller stored it. C callers may store any int
// there, and in C++ loading an out-of-range value as the enum is undefined,
// so callers' fields are read through their bytes first.
inline int32_t raw_dtype(const rpa_dtype& field) {
  int32_t v;
  static_assert(sizeof(rpa_dtype) == sizeof(int32_t));
  std::memcpy(&v, &field, sizeof v);
  return v;
}

constexpr bool is_valid_dtype(int32_t t) { return t >= RPA_F32 && t <= RPA_INT8; }

// Activations (queries, keys, values, out) are one of the float types.
constexpr bool is_act_dtype(int32_t t) { return t == RPA_F32 || t == RPA_BF16 || t == RPA_F16; }

// fp8 and int8 caches saturate on write and honour q_scale; the float types do not.
constexpr bool is_quantized_dtype(rpa_dtype t) {
  return t == RPA_FP8_E4M3 || t == RPA_FP8_E5M2 || t == RPA_INT8;
}

constexpr size_t dtype_size(rpa_dtype t) {
  switch (t) {
    case RPA_F32: return 4;
    case RPA_BF16:
    case RPA_F16: return 2;
    case RPA_FP8_E4M3:
    case RPA_FP8_E5M2:
    case RPA_INT8: return 1;
  }
  return 0;
}

constexpr const char* dtype_name(rpa_dtype t) {
  switch (t) {
    case RPA_F32: return "f32";
    case RPA_BF16: return "bf16";
    case RPA_F16: return "f16";
    case RPA_FP8_E4M3: return "fp8_e4m3";
    case RPA_FP8_E5M2: return "fp8_e5m2";
    case RPA_INT8: return "int8";
  }
  return "invalid";
}

}  // namespace
}  // namespace rpa
