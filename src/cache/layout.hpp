// The one cache layout, for every ISA path (README.md "Cache layout").
//
//   cache = num_pages pages, each page_bytes long (a multiple of 64);
//   page  = num_kv_heads x { K block, V block }, each block padded to 64 bytes;
//   a block is made of 32-bit words, each holding `pack` = 4 / sizeof(element)
//   elements (f32: 1, bf16/f16: 2, fp8/int8: 4):
//     K block: word (dim_group, slot) at word index dim_group * page_size + slot
//              holds dims dim_group*pack .. +pack-1 of token `slot`;
//     V block: word (slot_group, dim) at word index slot_group * head_dim + dim
//              holds slots slot_group*pack .. +pack-1 of dim `dim`.
//
// Why: a whole page (all heads, K and V) is one contiguous run, so decode reads
// long runs (64 KiB per page at Llama-3-8B shapes and page 16: random 64 KiB
// blocks stream at ~86% of B_stream, 16 KiB ones at ~72%). In K the 32-bit lanes
// run along tokens, so one vector load gives 16 tokens' partial dot products
// (scores come out token-per-lane, ready for the softmax) and bf16 pairs of
// dims are exactly the VNNI B operand of Q.K^T for vdpbf16ps and AMX. In V the
// lanes run along dims with token pairs interleaved: the VNNI B operand of P.V.
// The fused update writes this order directly, so no path repacks at read time.
//
// BlockOrder::kRows is not a second layout for engines: it is the other side of
// an ablation (rpa_set_tuning("layout_at_write", 0), rpa-bench --ablate). Each
// K and V block then holds the page's tokens as rows of head_dim elements
// (word (slot, dim_group) at slot * dim_groups + dim_group, in both blocks),
// the order other engines keep, and the prefill kernel packs at read time what
// the documented order stores ready. Only bf16 caches with an even page_size
// and head_dim (rows_order_supported): the blocks then have the same sizes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.hpp"

namespace rpa {

enum class BlockOrder : int32_t { kTiles, kRows };

// A plain aggregate so that it can cross from the baseline code into the
// per-ISA kernels; its helpers below have internal linkage (see convert.hpp).
struct CacheLayout {
  int32_t num_kv_heads;
  int32_t head_dim;
  int32_t page_size;
  rpa_dtype dtype;
  int32_t elem_bytes;
  int32_t pack;            // elements per 32-bit word
  int32_t dim_groups;      // K words per token: ceil(head_dim / pack)
  int32_t slot_groups;     // V words per dim: ceil(page_size / pack)
  size_t k_block_bytes;    // padded to 64
  size_t v_block_bytes;    // padded to 64
  size_t head_bytes;       // k_block_bytes + v_block_bytes
  size_t page_bytes;       // num_kv_heads * head_bytes
  BlockOrder order;        // kTiles, but in the pack-at-read ablation
};

namespace {

inline size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// The configs the kRows order takes, and what a call it cannot take is told.
inline bool rows_order_supported(const rpa_cache_config& c) {
  return c.dtype == RPA_BF16 && c.page_size % 2 == 0 && c.head_dim % 2 == 0;
}
inline constexpr const char kRowsOrderLimits[] =
    "layout_at_write is off (rpa_set_tuning, the pack-at-read ablation): it takes bf16 caches "
    "with an even page_size and head_dim";

inline CacheLayout make_layout(const rpa_cache_config& c, BlockOrder order = BlockOrder::kTiles) {
  CacheLayout l;
  l.order = order;
  l.num_kv_heads = c.num_kv_heads;
  l.head_dim = c.head_dim;
  l.page_size = c.page_size;
  l.dtype = c.dtype;
  l.elem_bytes = int32_t(dtype_size(c.dtype));
  l.pack = 4 / l.elem_bytes;
  l.dim_groups = int32_t((size_t(c.head_dim) + l.pack - 1) / l.pack);
  l.slot_groups = int32_t((size_t(c.page_size) + l.pack - 1) / l.pack);
  l.k_block_bytes = round_up(size_t(l.dim_groups) * c.page_size * 4, 64);
  l.v_block_bytes = round_up(size_t(l.slot_groups) * c.head_dim * 4, 64);
  l.head_bytes = l.k_block_bytes + l.v_block_bytes;
  l.page_bytes = l.head_bytes * size_t(c.num_kv_heads);
  return l;
}

// Bytes of the whole cache, 0 when that overflows size_t.
inline size_t cache_bytes(const rpa_cache_config& c) {
  const CacheLayout l = make_layout(c);
  size_t total;
  if (__builtin_mul_overflow(l.page_bytes, size_t(c.num_pages), &total)) return 0;
  return total;
}

inline size_t k_block_offset(const CacheLayout& l, int64_t page, int32_t kv_head) {
  return size_t(page) * l.page_bytes + size_t(kv_head) * l.head_bytes;
}
inline size_t v_block_offset(const CacheLayout& l, int64_t page, int32_t kv_head) {
  return k_block_offset(l, page, kv_head) + l.k_block_bytes;
}
// Bytes of a token's row in a K or V block in the kRows order.
inline size_t row_bytes(const CacheLayout& l) { return size_t(l.dim_groups) * 4; }
// Byte offset of element (slot, dim) inside a K block / a V block.
inline size_t k_element(const CacheLayout& l, int32_t slot, int32_t dim) {
  if (l.order == BlockOrder::kRows) return size_t(slot) * row_bytes(l) + size_t(dim) * l.elem_bytes;
  return (size_t(dim / l.pack) * l.page_size + slot) * 4 + size_t(dim % l.pack) * l.elem_bytes;
}
inline size_t v_element(const CacheLayout& l, int32_t slot, int32_t dim) {
  if (l.order == BlockOrder::kRows) return size_t(slot) * row_bytes(l) + size_t(dim) * l.elem_bytes;
  return (size_t(slot / l.pack) * l.head_dim + dim) * 4 + size_t(slot % l.pack) * l.elem_bytes;
}

}  // namespace
}  // namespace rpa
