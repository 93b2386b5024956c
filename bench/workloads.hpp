// The workloads of BENCH.md, their inputs (activations, page tables, a filled
// KV cache) and the timing of one attention call over them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rpa/rpa.h"

namespace rpa_bench {

struct ModelShape {
  int32_t num_q_heads;
  int32_t num_kv_heads;
  int32_t head_dim;
};

struct Sequence {
  int32_t q_len;
  int32_t kv_len;
};

// One batch: decodes first, then prefills (full prompts or chunks), the order
// the batch's distribution array describes.
struct WorkloadSpec {
  std::string id;
  std::vector<Sequence> seqs;
  int32_t num_decodes = 0;
  bool decode_only() const { return num_decodes == static_cast<int32_t>(seqs.size()); }
  int32_t num_tokens() const;
};

// The ids of BENCH.md's table, in its order.
const std::vector<std::string>& workload_ids();

// The workload `id` with every length divided by `length_divisor` (1 for the
// real figures; --smoke shrinks them). nullopt for an unknown id.
std::optional<WorkloadSpec> make_workload(std::string_view id, int32_t length_divisor);

// Bytes and flops a call must at least move and do (BENCH.md "The figures").
// The decode/prefill split feeds the roofline fraction of mixed batches.
struct WorkCounts {
  double kv_bytes = 0;         // K and V of every sequence, read once
  double decode_kv_bytes = 0;  // the same over the decodes only
  double flops = 0;            // 4 * Hq * D per visible (query, key) pair
  double prefill_flops = 0;    // the same over the non-decodes only
};

WorkCounts count_work(const WorkloadSpec& w, const ModelShape& shape, rpa_dtype cache_dtype);

size_t dtype_bytes(rpa_dtype dtype);

// Queries, keys and values (bf16, about N(0,1), fixed seed) and the output rows.
struct Activations {
  std::vector<uint16_t> queries, keys, values, out;
};

Activations make_activations(const WorkloadSpec& w, const ModelShape& shape);

// Pages the workload's sequences occupy at this page size.
int32_t pages_needed(const WorkloadSpec& w, int32_t page_size);

// The cache config for the given page size and dtype: enough pages for the
// largest workload and at least `min_bytes` in all (by rpa_cache_bytes), so
// that a shuffled page order spreads the reads over far more than the L3.
// Throws std::runtime_error when the library rejects the config.
rpa_cache_config cache_config_for(const ModelShape& shape, int32_t page_size, rpa_dtype dtype,
                                  int32_t min_pages, size_t min_bytes);

// Fills a cache with small finite values of its dtype (see workloads.cpp).
void fill_cache(void* cache, size_t bytes, rpa_dtype dtype, int threads);

// The k_scale/v_scale to run a cache of this dtype with: 1/32 for int8, whose
// fill pattern holds integers of magnitude 32..96; 0 (= 1) otherwise.
float cache_scale(rpa_dtype dtype);

// The batch arrays of a workload, each sequence's pages drawn from one shuffle
// of the whole cache (no page twice, so the fused K/V write is valid).
// The workload's batch over as many disjoint sets of pages as the cache
// holds: timed calls take the sets in turn, so a call's pages were last read
// (cache size / set size - 1) calls ago. A single set would be served from L3
// on CPUs whose L3 holds the working set (this machine kind reports 480 MiB;
// D1 reads 268 MB).
// With shared_pages, every second decode reads through its first entry the
// page the decode before it writes its new token into (API.md 1.1's read
// after write), in place of a page of its own: the same bytes to read.
class BatchTables {
 public:
  BatchTables(const WorkloadSpec& w, int32_t page_size, int32_t num_pages, bool shared_pages = false);
  BatchTables(const BatchTables&) = delete;  // the batches point into the vectors
  BatchTables& operator=(const BatchTables&) = delete;
  const std::vector<rpa_batch>& rotation() const { return batches_; }

 private:
  std::vector<int32_t> kv_lens_, cu_q_lens_;
  std::vector<std::vector<int32_t>> page_indices_;  // one table per page set
  int32_t distribution_[3];
  std::vector<rpa_batch> batches_;
};

// Everything one attention call over a workload needs.
struct CallArgs {
  const void* queries;
  const void* keys;
  const void* values;
  void* kv_cache;
  const rpa_cache_config* cache;
  const rpa_batch* batch;
  const rpa_options* opts;
  void* out;
};

// The call that is timed. Rows of the normal run use library_call; ablation
// rows pass another (e.g. one that switches an internal knob first), and the
// timing, counting and reporting stay the same.
using AttentionCall = std::function<rpa_status(const CallArgs&, char* err, size_t err_len)>;

// rpa_ragged_paged_attention with update_kv_cache as set in opts (the bench
// sets it: the fused K/V write is part of a serving step's call).
rpa_status library_call(const CallArgs& a, char* err, size_t err_len);

struct TimingPolicy {
  int warmup = 2;
  int min_reps = 10;
  int max_reps = 200;
  double min_timed_seconds = 0.3;  // fast calls get more reps, up to max_reps
};

struct Timing {
  double median_s = 0;
  double min_s = 0;
  int reps = 0;
};

// Times calls of `call`: warm-up, then individually timed reps. Every call
// repeats the same batch (same slots rewritten with the same K/V), so each is
// valid. Throws std::runtime_error with the library's message if one fails.
// Times calls of `call` on args, the i-th call with batch rotation[i % size].
Timing time_calls(const AttentionCall& call, CallArgs args, const std::vector<rpa_batch>& rotation,
                  const TimingPolicy& policy);

}  // namespace rpa_bench
