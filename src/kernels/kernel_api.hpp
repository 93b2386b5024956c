// What the baseline code hands to the per-ISA kernels. Plain aggregates and
// function pointers only: nothing here is compiled differently per ISA.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "cache/layout.hpp"

namespace rpa {

// One call's shapes, features and buffers, resolved by the plan.
struct AttentionCall {
  const void* queries;  // T rows of [Hq, D] act_dtype, q_row_stride elements apart
  void* out;            // [T, Hq, D] act_dtype
  const uint8_t* cache;
  CacheLayout layout;
  rpa_dtype act_dtype;
  int32_t num_q_heads;
  int32_t group;  // query heads per kv head
  float sm_scale;
  float soft_cap;  // 0 = none
  float q_scale;   // 0 = none; only for quantized caches
  float k_scale;   // > 0
  float v_scale;   // > 0
  int32_t causal;
  int32_t sliding_window;  // 0 = none
  const float* sinks;      // [Hq] or nullptr
  const int32_t* kv_lens;
  const int32_t* cu_q_lens;
  const int32_t* page_table;  // [num_seqs, pages_per_seq]
  int32_t pages_per_seq;
  // Fused update in the decode kernel: the item holding a decode sequence's
  // last position writes its new token before reading it. nullptr when the
  // call does not update the cache or the tokens were written beforehand.
  const void* decode_keys;    // T rows of [Hkv, D] act_dtype, k_row_stride elements apart
  const void* decode_values;  // likewise, v_row_stride apart
  // Elements between consecutive token rows of queries, keys and values
  // (>= a row; a row exactly for packed tensors, more for slices of a fused
  // qkv tensor).
  int64_t q_row_stride;
  int64_t k_row_stride;
  int64_t v_row_stride;
  // [num_seqs]: 1 for a decode whose new token the plan wrote beforehand
  // (another sequence reads its page), or nullptr when there is none.
  const uint8_t* decode_written_first;
  // Split-KV partial results, merged by merge_partials (kernels/split_merge).
  float* partials;
  int32_t prefetch;  // software prefetch of the next page (decode)
  int32_t pair_tiles;  // bf16 prefill on the path's pair tiles, where it has them
};

namespace {

// Layout of one partial result: m[Hq], l[Hq], acc[Hq][head_dim].
inline size_t partial_floats(int32_t num_q_heads, int32_t head_dim) {
  return size_t(num_q_heads) * (size_t(head_dim) + 2);
}

}  // namespace

// A unit of attention work: query rows [row_begin, row_end) of one sequence
// (absolute rows of `queries`), all query heads of one kv head, or of every kv
// head when kv_head is kAllKvHeads (decode: a page is then one contiguous read).
// Decode items may cover a split [kv_begin, kv_end) of the visible positions;
// a split writes partial result number `partial` instead of `out`.
inline constexpr int32_t kAllKvHeads = -1;
struct WorkItem {
  int32_t seq;
  int32_t kv_head;
  int32_t row_begin;
  int32_t row_end;
  int32_t kv_begin;
  int32_t kv_end;
  int32_t partial;  // -1: the item's result is final
  int32_t first_split;  // 1 for the split that carries the attention sink
};

namespace {

// Float scratch one work item of `rows` query rows needs (any ISA).
inline constexpr size_t kMaxLanes = 16;
inline size_t attention_scratch_floats(const CacheLayout& l, int32_t group, int32_t rows) {
  const size_t n = size_t(rows) * group;
  const size_t q = size_t(l.dim_groups) * l.pack;
  const size_t acc = (size_t(l.head_dim) + kMaxLanes - 1) / kMaxLanes * kMaxLanes;
  return n * (q + acc + kMaxLanes + 4) + 64;
}

// The decode kernel (kernels/decode_body.inl) walks a sequence in blocks of
// whole pages, at least this many tokens when pages are smaller: one softmax
// step per block and row, and the P.V accumulators stay in registers across
// the block's pages. Per 16-token page, that per-block work took ~1/8 of a
// bf16 decode's kernel time against ~1/15 at page 128 (perf, AVX2, Zen 3).
inline constexpr int32_t kDecodeBlockTokens = 64;
inline int32_t decode_block_pages(int32_t page_size) {
  return page_size >= kDecodeBlockTokens ? 1 : kDecodeBlockTokens / page_size;
}
// Floats per row of a decode item's scores: a block's positions, plus room
// for the last page's whole score steps (at most kMaxLanes wide) past them.
inline int32_t decode_score_width(int32_t page_size) {
  return int32_t(round_up(size_t(decode_block_pages(page_size)) * page_size + kMaxLanes, kMaxLanes));
}

// Floats of a decode query row: head_dim <= 512 (validate.cpp) padded to
// whole runs of kMaxLanes cache words of up to 4 dims.
inline constexpr int32_t kMaxQueryWidth = 512 + 4 * int32_t(kMaxLanes);

// Float scratch of a decode item (all kv heads, one query row). Its
// accumulator rows are padded to a whole number of P.V dim blocks of any
// ISA: the widest is 4 vectors of kMaxLanes (Ops::kDecodeVecsPerBlock).
inline constexpr size_t kMaxDecodeVecsPerBlock = 4;
inline size_t decode_scratch_floats(const CacheLayout& l, int32_t num_q_heads, int32_t group) {
  const size_t q = round_up(size_t(l.dim_groups), kMaxLanes) * l.pack;
  const size_t acc = round_up(size_t(l.head_dim), kMaxLanes * kMaxDecodeVecsPerBlock);
  const size_t scores = size_t(decode_score_width(l.page_size));
  // + the AMX decode's tile staging: a P.V result, bf16 probabilities, a
  // copy of up to 16 V rows and, for 1-byte caches, a page's K and V as bf16.
  const size_t amx = 16 * 16 + 16 * 32 / 2 + 16 * size_t(l.head_dim) +
                     (l.elem_bytes == 1 ? size_t(l.head_dim) * l.page_size : 0);
  return size_t(num_q_heads) * (q + acc + 3) + size_t(group) * scores + amx + 64;
}

// The prefill kernel (kernels/prefill_body.inl) walks positions in blocks of
// this many tokens: K and V of a block are widened to fp32 once for all of an
// item's score rows (64 x 128 dims x 2 x 4 bytes = 64 KiB, L2-resident next to
// the item's queries and accumulators).
inline constexpr size_t kPrefillBlockTokens = 64;
// The AMX tiles' blocks (prefill_amx.inl), the largest.
inline constexpr size_t kMaxPrefillBlockTokens = 512;
// Widest register tile of the prefill kernel, in floats (2 vectors of 16),
// and most scores of a slab (prefill_body.inl; AMX's 16 rows x 512 tokens).
inline constexpr size_t kMaxTileWidth = 32;
inline constexpr size_t kMaxPrefillSlabScores = 16 * 512;
// Query rows and K tile rows of a prefill item, in floats: its dims, or the
// 16 dim pairs of one AMX tile's depth where head_dim is below 32.
inline size_t prefill_query_floats(const CacheLayout& l) {
  return std::max<size_t>(size_t(l.dim_groups) * l.pack, 16);
}

// Floats per score row the planner sizes prefill items by: the row's query,
// output accumulators, a block's scores and 6 floats of softmax state and
// column bounds. The scores are a slab's at a time (prefill_scratch_floats).
inline size_t prefill_row_floats(const CacheLayout& l) {
  const size_t dims = prefill_query_floats(l);
  const size_t o_stride = round_up(size_t(l.head_dim), kMaxTileWidth);
  return dims + o_stride + kPrefillBlockTokens + 6;
}

// Float scratch of a prefill item of `rows` query rows (score rows M = rows * group).
inline size_t prefill_scratch_floats(const CacheLayout& l, int32_t group, int32_t rows) {
  const size_t M = size_t(rows) * group;
  const size_t N = kMaxPrefillBlockTokens;
  const size_t dims = prefill_query_floats(l);
  const size_t o_stride = round_up(size_t(l.head_dim), kMaxTileWidth);
  const size_t per_row = dims + o_stride + 6;
  // + up to 15 floats before each of the 11 regions, to start it on a 64-byte line.
  return M * per_row + kMaxPrefillSlabScores + dims * (N + kMaxLanes) + N * o_stride + 11 * 16;
}

}  // namespace

using AttendFn = void (*)(const AttentionCall& call, const WorkItem& item, float* scratch);

// The entry points of one (ISA, cache dtype, act dtype): decode, prefill and
// mixed sequences reach separate kernels; `general` is the one body that
// computes any item straight from the cache words, taken by items too small
// for the prefill kernel's tiles and by the ablation of the prefill kernel.
struct AttentionKernels {
  AttendFn decode;
  AttendFn prefill;
  AttendFn mixed;
  AttendFn general;
};

// Per-ISA selectors, each defined in its own translation unit.
AttentionKernels scalar_kernels(rpa_dtype cache, rpa_dtype act);
AttentionKernels avx2_kernels(rpa_dtype cache, rpa_dtype act);
AttentionKernels avx512_kernels(rpa_dtype cache, rpa_dtype act);
AttentionKernels avx512_bf16_kernels(rpa_dtype cache, rpa_dtype act);
AttentionKernels amx_kernels(rpa_dtype cache, rpa_dtype act);

}  // namespace rpa
