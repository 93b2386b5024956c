#include "cache/token_io.hpp"

#include "cache/convert.hpp"

namespace rpa {

void write_token(uint8_t* cache, const CacheLayout& l, int32_t page, int32_t slot, const void* k,
                 const void* v, rpa_dtype src, float k_scale, float v_scale) {
  for (int32_t h = 0; h < l.num_kv_heads; ++h) {
    uint8_t* k_block = cache + k_block_offset(l, page, h);
    uint8_t* v_block = cache + v_block_offset(l, page, h);
    const size_t row = size_t(h) * l.head_dim;
    for (int32_t d = 0; d < l.head_dim; ++d) {
      encode_scaled(load_act(k, row + d, src), k_scale, l.dtype, k_block + k_element(l, slot, d));
      encode_scaled(load_act(v, row + d, src), v_scale, l.dtype, v_block + v_element(l, slot, d));
    }
    for (int32_t d = l.head_dim; d < l.dim_groups * l.pack; ++d) {
      encode_scaled(0.0f, 1.0f, l.dtype, k_block + k_element(l, slot, d));
    }
  }
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
