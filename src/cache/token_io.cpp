#include "cache/token_io.hpp"

#include <algorithm>
#include <type_traits>

#include "cache/convert.hpp"
#include "threading/thread_pool.hpp"

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

// Where one token's elements lie in its page's K and V blocks: the first in
// each block (k_slot, v_slot) and the bytes from one dim's element to the
// next (kRows: a row of elements; else the layout's words), the layout's
// divisions by `pack` resolved at compile time.
template <rpa_dtype kCache, BlockOrder kOrder>
struct TokenPlaces {
  static constexpr size_t kSize = dtype_size(kCache);
  static constexpr int32_t kPack = int32_t(4 / kSize);
  static constexpr bool kRows = kOrder == BlockOrder::kRows;
  static constexpr size_t kVDimStep = kRows ? kSize : 4;
  const CacheLayout& l;
  size_t k_slot;
  size_t v_slot;

  TokenPlaces(const CacheLayout& layout, int32_t slot)
      : l(layout),
        k_slot(kRows ? size_t(slot) * row_bytes(layout) : size_t(slot) * 4),
        v_slot(kRows ? size_t(slot) * row_bytes(layout)
                     : size_t(slot / kPack) * layout.head_dim * 4 + size_t(slot % kPack) * kSize) {}
  size_t k_dim(int32_t d) const {
    return kRows ? size_t(d) * kSize : size_t(d / kPack) * l.page_size * 4 + size_t(d % kPack) * kSize;
  }
};

// Templated on both types and the block order so that the per-element
// conversions and the layout's divisions by `pack` are resolved at compile time.
template <rpa_dtype kSrc, rpa_dtype kDst, BlockOrder kOrder>
void write_token_as(uint8_t* cache, const CacheLayout& l, int32_t page, int32_t slot,
                    const void* k, const void* v, float k_scale, float v_scale) {
  using At = TokenPlaces<kDst, kOrder>;
  constexpr size_t kSrcSize = dtype_size(kSrc);
  const At at(l, slot);
  const uint8_t* k_src = static_cast<const uint8_t*>(k);
  const uint8_t* v_src = static_cast<const uint8_t*>(v);
  for (int32_t h = 0; h < l.num_kv_heads; ++h) {
    uint8_t* k_block = cache + k_block_offset(l, page, h) + at.k_slot;
    uint8_t* v_block = cache + v_block_offset(l, page, h) + at.v_slot;
    const size_t row = size_t(h) * l.head_dim * kSrcSize;
    for (int32_t d = 0; d < l.head_dim; ++d) {
      put<kSrc, kDst>(k_src + row + d * kSrcSize, k_scale, k_block + at.k_dim(d));
      put<kSrc, kDst>(v_src + row + d * kSrcSize, v_scale, v_block + size_t(d) * At::kVDimStep);
    }
    // The rest of the token's last K word, past head_dim, is zero so that
    // dot products over whole words stay exact.
    for (int32_t d = l.head_dim; d < l.dim_groups * At::kPack; ++d)
      std::memset(k_block + at.k_dim(d), 0, At::kSize);
  }
}

// The reverse: stored * scale, rounded to kDst as store_act does.
template <rpa_dtype kCache, rpa_dtype kDst, BlockOrder kOrder>
void read_token_as(const uint8_t* cache, const CacheLayout& l, int32_t page, int32_t slot, void* k,
                   void* v, float k_scale, float v_scale) {
  using At = TokenPlaces<kCache, kOrder>;
  constexpr size_t kDstSize = dtype_size(kDst);
  const At at(l, slot);
  uint8_t* k_dst = static_cast<uint8_t*>(k);
  uint8_t* v_dst = static_cast<uint8_t*>(v);
  for (int32_t h = 0; h < l.num_kv_heads; ++h) {
    const uint8_t* k_block = cache + k_block_offset(l, page, h) + at.k_slot;
    const uint8_t* v_block = cache + v_block_offset(l, page, h) + at.v_slot;
    const size_t row = size_t(h) * l.head_dim * kDstSize;
    for (int32_t d = 0; d < l.head_dim; ++d) {
      encode_scaled(decode_element(k_block + at.k_dim(d), kCache) * k_scale, 1.0f, kDst,
                    k_dst + row + d * kDstSize);
      encode_scaled(decode_element(v_block + size_t(d) * At::kVDimStep, kCache) * v_scale, 1.0f,
                    kDst, v_dst + row + d * kDstSize);
    }
  }
}

// fn(std::integral_constant<rpa_dtype, T>{}) for the run-time dtype t: any
// rpa_dtype (with_dtype), or an activation dtype (with_act_dtype).
template <class Fn>
void with_dtype(rpa_dtype t, Fn&& fn) {
  switch (t) {
    case RPA_F32: return fn(std::integral_constant<rpa_dtype, RPA_F32>{});
    case RPA_BF16: return fn(std::integral_constant<rpa_dtype, RPA_BF16>{});
    case RPA_F16: return fn(std::integral_constant<rpa_dtype, RPA_F16>{});
    case RPA_FP8_E4M3: return fn(std::integral_constant<rpa_dtype, RPA_FP8_E4M3>{});
    case RPA_FP8_E5M2: return fn(std::integral_constant<rpa_dtype, RPA_FP8_E5M2>{});
    case RPA_INT8: return fn(std::integral_constant<rpa_dtype, RPA_INT8>{});
  }
}
template <class Fn>
void with_act_dtype(rpa_dtype t, Fn&& fn) {
  if (t == RPA_F32) return fn(std::integral_constant<rpa_dtype, RPA_F32>{});
  if (t == RPA_BF16) return fn(std::integral_constant<rpa_dtype, RPA_BF16>{});
  fn(std::integral_constant<rpa_dtype, RPA_F16>{});
}
template <class Fn>
void with_order(BlockOrder order, Fn&& fn) {
  if (order == BlockOrder::kRows) return fn(std::integral_constant<BlockOrder, BlockOrder::kRows>{});
  fn(std::integral_constant<BlockOrder, BlockOrder::kTiles>{});
}

}  // namespace

void write_token(uint8_t* cache, const CacheLayout& l, int32_t page, int32_t slot, const void* k,
                 const void* v, rpa_dtype src, float k_scale, float v_scale) {
  with_act_dtype(src, [&](auto s) {
    with_dtype(l.dtype, [&](auto c) {
      with_order(l.order, [&](auto o) {
        write_token_as<s(), c(), o()>(cache, l, page, slot, k, v, k_scale, v_scale);
      });
    });
  });
}

void read_token(const uint8_t* cache, const CacheLayout& l, int32_t page, int32_t slot, void* k,
                void* v, rpa_dtype dst, float k_scale, float v_scale) {
  with_act_dtype(dst, [&](auto d) {
    with_dtype(l.dtype, [&](auto c) {
      with_order(l.order, [&](auto o) {
        read_token_as<c(), d(), o()>(cache, l, page, slot, k, v, k_scale, v_scale);
      });
    });
  });
}

namespace {

// Calls fn(i, page, slot) for each token not skipped, in tasks of 64
// consecutive tokens. Smaller tasks cost more than they spread: consecutive
// tokens of a prefill share a page's cache lines (a K line holds 16 slots of
// a dim pair), and tasks of 8 made 2048 bf16 tokens 3.5x slower on 2
// threads; 32 decode tokens took 87 us as two tasks and 46 us as one.
template <class Fn>
void for_each_token(const CacheLayout& l, const TokenRows& rows, int threads, Fn&& fn) {
  constexpr int64_t per_task = 64;
  const int64_t tasks = (int64_t(rows.n) + per_task - 1) / per_task;
  ThreadPool::global().parallel_for(tasks, threads, [&](int64_t task, int) {
    const int64_t end = std::min<int64_t>(rows.n, (task + 1) * per_task);
    for (int64_t i = task * per_task; i < end; ++i) {
      const int64_t slot = rows.slots[i];
      if (slot < 0) continue;
      fn(i, int32_t(slot / l.page_size), int32_t(slot % l.page_size));
    }
  });
}

}  // namespace

void write_tokens(uint8_t* cache, const CacheLayout& l, const TokenRows& rows, const void* k,
                  const void* v, int threads) {
  const size_t size = dtype_size(rows.dtype);
  for_each_token(l, rows, threads, [&](int64_t i, int32_t page, int32_t slot) {
    write_token(cache, l, page, slot, static_cast<const uint8_t*>(k) + size_t(i * rows.k_stride) * size,
                static_cast<const uint8_t*>(v) + size_t(i * rows.v_stride) * size, rows.dtype,
                rows.k_scale, rows.v_scale);
  });
}

void read_tokens(const uint8_t* cache, const CacheLayout& l, const TokenRows& rows, void* k, void* v,
                 int threads) {
  const size_t size = dtype_size(rows.dtype);
  for_each_token(l, rows, threads, [&](int64_t i, int32_t page, int32_t slot) {
    read_token(cache, l, page, slot, static_cast<uint8_t*>(k) + size_t(i * rows.k_stride) * size,
               static_cast<uint8_t*>(v) + size_t(i * rows.v_stride) * size, rows.dtype, rows.k_scale,
               rows.v_scale);
  });
}

}  // namespace rpa
