#include "cache/token_io.hpp"

#include "cache/convert.hpp"

namespace rpa {
namespace {

// One element x / scale into the cache. Same type and no scale: a copy.
template <rpa_dtype kSrc, rpa_dtype kDst>
inline void put(const uint8_t* src, float scale, uint8_t* dst) {
  constexpr size_t kSize = dtype_size(kDst);
  if constexpr (kSrc == kDst) {
    if (scale == 1.0f) {
      std::memcpy(dst, src, kSize);
      return;
    }
  }
  encode_scaled(decode_element(src, kSrc), scale, kDst, dst);
}

// Templated on both types so that the per-element conversions and the layout's
// divisions by `pack` are resolved at compile time.
template <rpa_dtype kSrc, rpa_dtype kDst>
void write_token_as(uint8_t* cache, const CacheLayout& l, int32_t page, int32_t slot,
                    const void* k, const void* v, float k_scale, float v_scale) {
  constexpr size_t kSrcSize = dtype_size(kSrc);
  constexpr size_t kSize = dtype_size(kDst);
  constexpr int32_t kPack = int32_t(4 / kSize);
  const uint8_t* k_src = static_cast<const uint8_t*>(k);
  const uint8_t* v_src = static_cast<const uint8_t*>(v);
  const size_t v_slot = size_t(slot / kPack) * l.head_dim * 4 + size_t(slot % kPack) * kSize;
  for (int32_t h = 0; h < l.num_kv_heads; ++h) {
    uint8_t* k_block = cache + k_block_offset(l, page, h) + size_t(slot) * 4;
    uint8_t* v_block = cache + v_block_offset(l, page, h) + v_slot;
    const size_t row = size_t(h) * l.head_dim * kSrcSize;
    for (int32_t d = 0; d < l.head_dim; ++d) {
      uint8_t* k_dst = k_block + size_t(d / kPack) * l.page_size * 4 + size_t(d % kPack) * kSize;
      put<kSrc, kDst>(k_src + row + d * kSrcSize, k_scale, k_dst);
      put<kSrc, kDst>(v_src + row + d * kSrcSize, v_scale, v_block + size_t(d) * 4);
    }
    // The rest of the token's last K word, past head_dim, is zero so that
    // dot products over whole words stay exact.
    for (int32_t d = l.head_dim; d < l.dim_groups * kPack; ++d)
      std::memset(k_block + size_t(d / kPack) * l.page_size * 4 + size_t(d % kPack) * kSize, 0, kSize);
  }
}

using WriteFn = void (*)(uint8_t*, const CacheLayout&, int32_t, int32_t, const void*, const void*,
                         float, float);

template <rpa_dtype kSrc>
WriteFn write_fn_from(rpa_dtype dst) {
  switch (dst) {
    case RPA_F32: return &write_token_as<kSrc, RPA_F32>;
    case RPA_BF16: return &write_token_as<kSrc, RPA_BF16>;
    case RPA_F16: return &write_token_as<kSrc, RPA_F16>;
    case RPA_FP8_E4M3: return &write_token_as<kSrc, RPA_FP8_E4M3>;
    case RPA_FP8_E5M2: return &write_token_as<kSrc, RPA_FP8_E5M2>;
    default: return &write_token_as<kSrc, RPA_INT8>;
  }
}

}  // namespace

void write_token(uint8_t* cache, const CacheLayout& l, int32_t page, int32_t slot, const void* k,
                 const void* v, rpa_dtype src, float k_scale, float v_scale) {
  const WriteFn fn = src == RPA_F32    ? write_fn_from<RPA_F32>(l.dtype)
                     : src == RPA_BF16 ? write_fn_from<RPA_BF16>(l.dtype)
                                       : write_fn_from<RPA_F16>(l.dtype);
  fn(cache, l, page, slot, k, v, k_scale, v_scale);
}

void read_token(const uint8_t* cache, const CacheLayout& l, int32_t page, int32_t slot, void* k,
                void* v, rpa_dtype dst, float k_scale, float v_scale) {
  for (int32_t h = 0; h < l.num_kv_heads; ++h) {
    const uint8_t* k_block = cache + k_block_offset(l, page, h);
    const uint8_t* v_block = cache + v_block_offset(l, page, h);
    const size_t row = size_t(h) * l.head_dim;
    for (int32_t d = 0; d < l.head_dim; ++d) {
      store_act(k, row + d, dst, decode_element(k_block + k_element(l, slot, d), l.dtype) * k_scale);
      store_act(v, row + d, dst, decode_element(v_block + v_element(l, slot, d), l.dtype) * v_scale);
    }
  }
}

}  // namespace rpa
