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

// Templated on both types and the block order so that the per-element
// conversions and the layout's divisions by `pack` are resolved at compile time.
template <rpa_dtype kSrc, rpa_dtype kDst, BlockOrder kOrder>
void write_token_as(uint8_t* cache, const CacheLayout& l, int32_t page, int32_t slot,
                    const void* k, const void* v, float k_scale, float v_scale) {
  constexpr size_t kSrcSize = dtype_size(kSrc);
  constexpr size_t kSize = dtype_size(kDst);
  constexpr int32_t kPack = int32_t(4 / kSize);
  constexpr bool kRows = kOrder == BlockOrder::kRows;
  const uint8_t* k_src = static_cast<const uint8_t*>(k);
  const uint8_t* v_src = static_cast<const uint8_t*>(v);
  // The token's first element in each block, and the bytes from one dim's
  // element to the next (kRows: a row of elements; else the layout's words).
  const size_t k_slot = kRows ? size_t(slot) * row_bytes(l) : size_t(slot) * 4;
  const size_t v_slot = kRows ? size_t(slot) * row_bytes(l)
                              : size_t(slot / kPack) * l.head_dim * 4 + size_t(slot % kPack) * kSize;
  const auto k_dim = [&](int32_t d) {
    return kRows ? size_t(d) * kSize : size_t(d / kPack) * l.page_size * 4 + size_t(d % kPack) * kSize;
  };
  const size_t v_dim_step = kRows ? kSize : 4;
  for (int32_t h = 0; h < l.num_kv_heads; ++h) {
    uint8_t* k_block = cache + k_block_offset(l, page, h) + k_slot;
    uint8_t* v_block = cache + v_block_offset(l, page, h) + v_slot;
    const size_t row = size_t(h) * l.head_dim * kSrcSize;
    for (int32_t d = 0; d < l.head_dim; ++d) {
      put<kSrc, kDst>(k_src + row + d * kSrcSize, k_scale, k_block + k_dim(d));
      put<kSrc, kDst>(v_src + row + d * kSrcSize, v_scale, v_block + size_t(d) * v_dim_step);
    }
    // The rest of the token's last K word, past head_dim, is zero so that
    // dot products over whole words stay exact.
    for (int32_t d = l.head_dim; d < l.dim_groups * kPack; ++d) std::memset(k_block + k_dim(d), 0, kSize);
  }
}

using WriteFn = void (*)(uint8_t*, const CacheLayout&, int32_t, int32_t, const void*, const void*,
                         float, float);

template <rpa_dtype kSrc, BlockOrder kOrder>
WriteFn write_fn_from(rpa_dtype dst) {
  switch (dst) {
    case RPA_F32: return &write_token_as<kSrc, RPA_F32, kOrder>;
    case RPA_BF16: return &write_token_as<kSrc, RPA_BF16, kOrder>;
    case RPA_F16: return &write_token_as<kSrc, RPA_F16, kOrder>;
    case RPA_FP8_E4M3: return &write_token_as<kSrc, RPA_FP8_E4M3, kOrder>;
    case RPA_FP8_E5M2: return &write_token_as<kSrc, RPA_FP8_E5M2, kOrder>;
    default: return &write_token_as<kSrc, RPA_INT8, kOrder>;
  }
}

template <BlockOrder kOrder>
WriteFn write_fn(rpa_dtype src, rpa_dtype dst) {
  return src == RPA_F32    ? write_fn_from<RPA_F32, kOrder>(dst)
         : src == RPA_BF16 ? write_fn_from<RPA_BF16, kOrder>(dst)
                           : write_fn_from<RPA_F16, kOrder>(dst);
}

}  // namespace

void write_token(uint8_t* cache, const CacheLayout& l, int32_t page, int32_t slot, const void* k,
                 const void* v, rpa_dtype src, float k_scale, float v_scale) {
  const WriteFn fn = l.order == BlockOrder::kRows ? write_fn<BlockOrder::kRows>(src, l.dtype)
                                                  : write_fn<BlockOrder::kTiles>(src, l.dtype);
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
