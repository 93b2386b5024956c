// Planning: everything about a batch that does not depend on the layer's
// tensors, done once per serving step (rpa_plan_create) and reused by every
// layer (rpa_plan_run). The one-call API plans and runs in one go.
#pragma once

#include <cstdint>
#include <vector>

#include "cache/layout.hpp"
#include "common/status.hpp"
#include "isa/cpu.hpp"
#include "kernels/kernel_api.hpp"
#include "plan/tuning.hpp"
#include "validate/validate.hpp"

namespace rpa {

// Which kernel entry point a work item takes: the batch's distribution, or
// the general kernel for items too small for tiles (and when switched off).
enum class SeqKind : uint8_t { kDecode, kPrefill, kMixed, kGeneral };

struct PlannedItem {
  WorkItem item;
  SeqKind kind;
  int64_t cost;  // query rows x visible kv positions, the balancing weight
};

class Plan {
 public:
  // Validates config, batch and options (nothing is touched on failure) and
  // splits the batch into work items.
  static Status create(const rpa_cache_config* cache, const rpa_batch* batch,
                       const rpa_options* opts, Plan* plan);

  // Validates the buffers and row strides, writes the new tokens into
  // kv_cache (when the options say so), then attends.
  Status run(const void* queries, const void* keys, const void* values, void* kv_cache,
             void* out, const RowStrides& strides = {}) const;

 private:
  void plan_items();
  // The pack-at-read ablation's limits (BlockOrder::kRows): what it cannot run.
  Status check_rows_order() const;
  void plan_decode_items(int32_t group);
  // The new tokens the decode kernel does not write: all of them, or with
  // fused_decode those of the prefill and mixed rows and of the decodes
  // written_first_ flags.
  void write_new_tokens(const void* keys, const void* values, const RowStrides& strides,
                        uint8_t* cache, bool fused_decode, int threads) const;

  rpa_cache_config cache_{};
  CacheLayout layout_{};
  rpa_options opts_{};
  std::vector<float> sinks_;
  int32_t num_seqs_ = 0;
  int32_t decode_end_ = 0;
  int32_t prefill_end_ = 0;
  std::vector<int32_t> kv_lens_;
  std::vector<int32_t> cu_q_lens_;
  // The page-table entries in use, compacted: sequence i's entries are
  // page_table_[i * pages_per_seq_ ...], pages_per_seq_ = the longest need.
  std::vector<int32_t> page_table_;
  int32_t pages_per_seq_ = 0;
  // [num_seqs]: 1 for a decode whose written page another sequence reads
  // (API.md 1.1: read after write); its new token is written before attention
  // with the prefill tokens instead of fused into the decode kernel. Empty
  // when there is none.
  std::vector<uint8_t> written_first_;
  std::vector<PlannedItem> items_;  // costliest first
  // Split decode sequences: partial results [first, first + count) merge into seq's row.
  struct SplitMerge {
    int32_t seq;
    int32_t first;
    int32_t count;
  };
  std::vector<SplitMerge> merges_;
  int32_t num_partials_ = 0;
  Tuning tuning_{};
  AttentionKernels kernels_{};
  int num_threads_ = 1;
  size_t scratch_floats_ = 0;  // per thread
};

// Busy fraction of each thread in the attention phase of the last call run on
// the calling host thread (rpa_last_call_busy).
const std::vector<double>& last_call_busy();

}  // namespace rpa
