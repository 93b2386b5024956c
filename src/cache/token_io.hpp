// Writing and reading one token's keys and values (all kv heads) in the cache
// layout: what rpa_cache_write/rpa_cache_read do, and what the fused update
// in an attention call does for every new token.
#pragma once

#include <cstdint>

#include "cache/layout.hpp"

namespace rpa {

// k and v are [num_kv_heads, head_dim] arrays of `src` (F32, BF16 or F16);
// scales are > 0 (1 = none). The unused elements of a K word past head_dim
// are written as zero so that dot products over whole words stay exact.
void write_token(uint8_t* cache, const CacheLayout& layout, int32_t page, int32_t slot,
                 const void* k, const void* v, rpa_dtype src, float k_scale, float v_scale);

void read_token(const uint8_t* cache, const CacheLayout& layout, int32_t page, int32_t slot,
                void* k, void* v, rpa_dtype dst, float k_scale, float v_scale);

// n tokens addressed by a slot mapping (rpa_cache_write_tokens and
// rpa_cache_read_tokens, checked by validate_token_batch): token i at slot
// slots[i] = page * page_size + slot in page, skipped when -1; its rows at
// rows.k + i * rows.k_stride and rows.v + i * rows.v_stride elements. Tokens
// are spread over `threads` threads in tasks of consecutive tokens.
struct TokenRows {
  int32_t n;
  const int64_t* slots;
  rpa_dtype dtype;  // of the rows
  int64_t k_stride;
  int64_t v_stride;
  float k_scale;  // > 0
  float v_scale;
};
void write_tokens(uint8_t* cache, const CacheLayout& layout, const TokenRows& rows, const void* k,
                  const void* v, int threads);
void read_tokens(const uint8_t* cache, const CacheLayout& layout, const TokenRows& rows, void* k,
                 void* v, int threads);

}  // namespace rpa
