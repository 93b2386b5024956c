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

}  // namespace rpa
