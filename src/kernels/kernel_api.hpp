// What the baseline code hands to the per-ISA kernels. Plain aggregates and
// function pointers only: nothing here is compiled differently per ISA.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cache/layout.hpp"

namespace rpa {

// One call's shapes, features and buffers, resolved by the plan.
struct AttentionCall {
  const void* queries;  // [T, Hq, D] act_dtype
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
};

// A unit of attention work: query rows [row_begin, row_end) of one sequence,
// all query heads of one kv head. Rows are absolute rows of `queries`.
struct WorkItem {
  int32_t seq;
  int32_t kv_head;
  int32_t row_begin;
  int32_t row_end;
};

// Float scratch one work item of `rows` query rows needs (any ISA).
inline constexpr size_t kMaxLanes = 16;
inline size_t attention_scratch_floats(const CacheLayout& l, int32_t group, int32_t rows) {
  const size_t n = size_t(rows) * group;
  const size_t q = size_t(l.dim_groups) * l.pack;
  const size_t acc = (size_t(l.head_dim) + kMaxLanes - 1) / kMaxLanes * kMaxLanes;
  return n * (q + acc + kMaxLanes + 4) + 64;
}

using AttendFn = void (*)(const AttentionCall& call, const WorkItem& item, float* scratch);

// The entry points of one (ISA, cache dtype, act dtype): decode, prefill and
// mixed sequences reach separate kernels.
struct AttentionKernels {
  AttendFn decode;
  AttendFn prefill;
  AttendFn mixed;
};

// Per-ISA selectors, each defined in its own translation unit.
AttentionKernels scalar_kernels(rpa_dtype cache, rpa_dtype act);
AttentionKernels avx2_kernels(rpa_dtype cache, rpa_dtype act);
AttentionKernels avx512_kernels(rpa_dtype cache, rpa_dtype act);
AttentionKernels avx512_bf16_kernels(rpa_dtype cache, rpa_dtype act);

}  // namespace rpa
