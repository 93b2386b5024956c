#include "plan/plan.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "cache/token_io.hpp"
#include "kernels/split_merge.hpp"
#include "threading/thread_pool.hpp"
#include "validate/validate.hpp"

namespace rpa {
namespace {

AttentionKernels kernels_for_isa(Isa isa, rpa_dtype cache, rpa_dtype act) {
  switch (isa) {
    case Isa::kAvx2: return avx2_kernels(cache, act);
    case Isa::kAvx512: return avx512_kernels(cache, act);
    case Isa::kAvx512Bf16: return avx512_bf16_kernels(cache, act);
    case Isa::kAmx: return amx_kernels(cache, act);
    default: return scalar_kernels(cache, act);
  }
}

// Bytes of an item's per-row tiles (queries, output accumulators, scores)
// the planner sizes prefill and mixed items to: enough score rows (query rows
// x G) that each widened K/V block serves many, few enough that the tiles stay
// in L2 beside the block (half of Zen 3's 512 KiB, the smallest L2 of this
// machine kind). At head_dim 128 that is 192 rows; against the former 96,
// 1024-token prefills ran 2-4% faster on one Zen 3 thread (A/B, both builds
// in one process; within the noise on two), and 384 rows (~480 KiB, past L2
// with the block) gave the gain back.
constexpr size_t kPrefillItemTileBytes = 256 * 1024;

// Score rows per prefill item: whole register tiles of 6 (AVX2) and 12
// (AVX-512) rows at G = 1, 2, 3, 4, 6, 8 (multiples of 24), at least 24.
int32_t prefill_score_rows(const CacheLayout& layout) {
  const size_t row_bytes = prefill_row_floats(layout) * sizeof(float);
  return int32_t(std::max<size_t>(24, kPrefillItemTileBytes / row_bytes / 24 * 24));
}

// Below this many score rows an item takes the general kernel: widening a
// K/V block costs about as much as 16 rows' FMAs on it.
constexpr int32_t kMinPrefillScoreRows = 16;

// Decode items per thread the planner aims for when splitting long sequences:
// enough that the dynamic claim evens out ragged lengths, few enough that
// each split still reads long runs. At 4, D2 (8 decodes of 8192) made 8
// unsplit items for 2 threads and one thread sat idle 13% of the call
// (rpa-bench --verbose); at 8 each is split in two.
constexpr int64_t kDecodeItemsPerThread = 8;
// A split is at least this many positions, so its fixed costs (loading the
// queries, the partial result, the merge) stay small against its reads.
constexpr int32_t kMinSplitTokens = 512;

// Per host thread: the busy fractions of its last call's threads.
thread_local std::vector<double> t_last_call_busy;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

const std::vector<double>& last_call_busy() { return t_last_call_busy; }

Status Plan::create(const rpa_cache_config* cache, const rpa_batch* batch, const rpa_options* opts,
                    Plan* plan) {
  if (Status s = validate_cache_config(cache); !s.ok()) return s;
  if (Status s = validate_options(opts, *cache); !s.ok()) return s;
  std::vector<int32_t> shared_writers;
  if (Status s = validate_batch(batch, *cache, *opts, &shared_writers); !s.ok()) return s;
  const IsaChoice& isa = chosen_isa();
  if (!isa.available) {
    return Status::make(RPA_ERR_UNSUPPORTED,
                        "RPA_ISA=%s: not a kernel path this build and CPU can run (scalar, avx2, "
                        "avx512, avx512_bf16, amx where the CPU has them)",
                        isa.requested);
  }

  Plan& p = *plan;
  p.cache_ = *cache;
  p.tuning_ = current_tuning();
  p.layout_ = make_layout(*cache, p.tuning_.layout_at_write ? BlockOrder::kTiles : BlockOrder::kRows);
  p.opts_ = *opts;
  if (opts->sinks != nullptr) {
    p.sinks_.assign(opts->sinks, opts->sinks + opts->num_q_heads);
    p.opts_.sinks = nullptr;  // the run uses sinks_, never the caller's array
  }
  if (p.opts_.k_scale == 0) p.opts_.k_scale = 1;
  if (p.opts_.v_scale == 0) p.opts_.v_scale = 1;
  p.decode_end_ = batch->distribution[0];
  p.prefill_end_ = batch->distribution[1];
  p.num_seqs_ = batch->distribution[2];
  p.kv_lens_.assign(batch->kv_lens, batch->kv_lens + p.num_seqs_);
  p.cu_q_lens_.assign(batch->cu_q_lens, batch->cu_q_lens + p.num_seqs_ + 1);
  p.pages_per_seq_ = 0;
  for (int32_t kv_len : p.kv_lens_)
    p.pages_per_seq_ = std::max(p.pages_per_seq_, (kv_len + cache->page_size - 1) / cache->page_size);
  p.page_table_.assign(size_t(p.num_seqs_) * p.pages_per_seq_, 0);
  for (int32_t i = 0; i < p.num_seqs_; ++i) {
    const int32_t used = (p.kv_lens_[i] + cache->page_size - 1) / cache->page_size;
    const int32_t* src = batch->page_indices + int64_t(i) * batch->pages_per_seq;
    std::copy(src, src + used, p.page_table_.begin() + int64_t(i) * p.pages_per_seq_);
  }
  for (int32_t i : shared_writers) {
    if (i >= p.decode_end_) break;
    if (p.written_first_.empty()) p.written_first_.assign(size_t(p.num_seqs_), 0);
    p.written_first_[size_t(i)] = 1;
  }
  p.kernels_ = kernels_for_isa(isa.isa, cache->dtype, opts->act_dtype);
  p.num_threads_ = opts->num_threads > 0 ? opts->num_threads : default_num_threads();
  p.plan_items();
  if (p.layout_.order == BlockOrder::kRows) return p.check_rows_order();
  return {};
}

Status Plan::check_rows_order() const {
  if (!rows_order_supported(cache_))
    return Status::make(RPA_ERR_UNSUPPORTED, "%s, on the prefill kernel only", kRowsOrderLimits);
  for (const PlannedItem& p : items_) {
    if (p.kind == SeqKind::kDecode || p.kind == SeqKind::kGeneral) {
      return Status::make(RPA_ERR_UNSUPPORTED,
                          "%s, on the prefill kernel only; sequence %d takes the %s kernel",
                          kRowsOrderLimits, p.item.seq,
                          p.kind == SeqKind::kDecode ? "decode" : "general");
    }
  }
  return {};
}

void Plan::plan_decode_items(int32_t group) {
  // Cost of a decode sequence: positions read (all kv heads at once).
  int64_t total = 0;
  std::vector<int32_t> first_visible(static_cast<size_t>(decode_end_));
  for (int32_t i = 0; i < decode_end_; ++i) {
    const int32_t pos = kv_lens_[i] - 1;
    first_visible[i] = opts_.sliding_window > 0 ? std::max(0, pos - opts_.sliding_window + 1) : 0;
    total += kv_lens_[i] - first_visible[i];
  }
  const int64_t target = std::max<int64_t>(
      kMinSplitTokens, total / std::max<int64_t>(1, int64_t(num_threads_) * kDecodeItemsPerThread));
  for (int32_t i = 0; i < decode_end_; ++i) {
    const int32_t begin = first_visible[i], end = kv_lens_[i];
    const int32_t row = cu_q_lens_[i];
    int32_t splits = 1;
    if (tuning_.split_kv && num_threads_ > 1 && end - begin > target)
      splits = int32_t((end - begin + target - 1) / target);
    if (splits == 1) {
      items_.push_back({{i, kAllKvHeads, row, row + 1, begin, end, -1, 1}, SeqKind::kDecode,
                        int64_t(end - begin) * cache_.num_kv_heads * group});
      continue;
    }
    // Equal splits on page boundaries, so each reads whole pages.
    const int32_t pages = (end - 1) / cache_.page_size - begin / cache_.page_size + 1;
    splits = std::min(splits, pages);
    merges_.push_back({i, num_partials_, splits});
    const int32_t first_page = begin / cache_.page_size;
    for (int32_t k = 0; k < splits; ++k) {
      const int32_t b = std::max(begin, (first_page + int32_t(int64_t(pages) * k / splits)) * cache_.page_size);
      const int32_t e = std::min(end, (first_page + int32_t(int64_t(pages) * (k + 1) / splits)) * cache_.page_size);
      items_.push_back({{i, kAllKvHeads, row, row + 1, b, e, num_partials_++, k == 0 ? 1 : 0},
                        SeqKind::kDecode, int64_t(e - b) * cache_.num_kv_heads * group});
    }
  }
}

void Plan::plan_items() {
  items_.clear();
  merges_.clear();
  num_partials_ = 0;
  const int32_t group = opts_.num_q_heads / cache_.num_kv_heads;
  const int32_t block_rows = std::max<int32_t>(1, prefill_score_rows(layout_) / group);
  int32_t max_rows = 1;
  int32_t max_tile_rows = 0;
  const bool decode_kernel = tuning_.decode_kernel;
  if (decode_kernel) plan_decode_items(group);
  for (int32_t i = decode_kernel ? decode_end_ : 0; i < num_seqs_; ++i) {
    const SeqKind seq_kind =
        i < decode_end_ || i >= prefill_end_ ? SeqKind::kMixed : SeqKind::kPrefill;
    const int32_t q_begin = cu_q_lens_[i], q_end = cu_q_lens_[i + 1];
    const int32_t kv_len = kv_lens_[i];
    for (int32_t r0 = q_begin; r0 < q_end; r0 += block_rows) {
      const int32_t r1 = std::min(q_end, r0 + block_rows);
      // The last row sees the most under a causal mask; a window bounds it.
      const int32_t last_pos = kv_len - (q_end - r1) - 1;
      int64_t visible = opts_.causal ? last_pos + 1 : kv_len;
      if (opts_.sliding_window > 0) visible = std::min(visible, int64_t(opts_.sliding_window) + (r1 - r0));
      const int64_t cost = int64_t(r1 - r0) * group * visible;
      const bool tiles = tuning_.prefill_kernel && (r1 - r0) * group >= kMinPrefillScoreRows;
      const SeqKind kind = tiles ? seq_kind : SeqKind::kGeneral;
      for (int32_t h = 0; h < cache_.num_kv_heads; ++h)
        items_.push_back({{i, h, r0, r1, 0, kv_len, -1, 1}, kind, cost});
      max_rows = std::max(max_rows, r1 - r0);
      if (tiles) max_tile_rows = std::max(max_tile_rows, r1 - r0);
    }
  }
  std::stable_sort(items_.begin(), items_.end(),
                   [](const PlannedItem& a, const PlannedItem& b) { return a.cost > b.cost; });
  scratch_floats_ = std::max({attention_scratch_floats(layout_, group, max_rows),
                              decode_scratch_floats(layout_, opts_.num_q_heads, group),
                              prefill_scratch_floats(layout_, group, max_tile_rows)});
}

void Plan::write_new_tokens(const void* keys, const void* values, const RowStrides& strides,
                            uint8_t* cache, bool fused_decode, int threads) const {
  const size_t elem = dtype_size(opts_.act_dtype);
  const int32_t total_rows = num_seqs_ > 0 ? cu_q_lens_[num_seqs_] : 0;
  const int32_t first_row = fused_decode ? cu_q_lens_[decode_end_] : 0;
  constexpr int32_t kRowsPerTask = 16;
  const int64_t range_tasks = (total_rows - first_row + kRowsPerTask - 1) / kRowsPerTask;
  // The decodes among [0, decode_end_) that written_first_ flags, as tasks of their own.
  const int64_t decodes = fused_decode && !written_first_.empty() ? decode_end_ : 0;
  const int64_t tasks = range_tasks + (decodes + kRowsPerTask - 1) / kRowsPerTask;
  const auto write_row = [&](int32_t seq, int32_t r) {
    const int32_t pos = kv_lens_[seq] - (cu_q_lens_[seq + 1] - r);
    const int32_t page = page_table_[size_t(seq) * pages_per_seq_ + pos / cache_.page_size];
    write_token(cache, layout_, page, pos % cache_.page_size,
                static_cast<const uint8_t*>(keys) + size_t(r) * size_t(strides.keys) * elem,
                static_cast<const uint8_t*>(values) + size_t(r) * size_t(strides.values) * elem,
                opts_.act_dtype, opts_.k_scale, opts_.v_scale);
  };
  ThreadPool::global().parallel_for(tasks, threads, [&](int64_t task, int) {
    if (task >= range_tasks) {
      const int64_t d0 = (task - range_tasks) * kRowsPerTask;
      for (int32_t seq = int32_t(d0); seq < std::min(decodes, d0 + kRowsPerTask); ++seq)
        if (written_first_[size_t(seq)]) write_row(seq, cu_q_lens_[seq]);
      return;
    }
    const int32_t r_begin = first_row + int32_t(task) * kRowsPerTask;
    const int32_t r_end = std::min(total_rows, r_begin + kRowsPerTask);
    // Rows are in sequence order: find the first row's sequence, then walk.
    int32_t i = int32_t(std::upper_bound(cu_q_lens_.begin(), cu_q_lens_.end(), r_begin) -
                        cu_q_lens_.begin()) - 1;
    for (int32_t r = r_begin; r < r_end; ++r) {
      while (r >= cu_q_lens_[i + 1]) ++i;
      write_row(i, r);
    }
  });
}

Status Plan::run(const void* queries, const void* keys, const void* values, void* kv_cache,
                 void* out, const RowStrides& strides) const {
  if (Status s = validate_buffers(queries, keys, values, kv_cache, out, opts_); !s.ok()) return s;
  RowStrides rows;
  if (Status s = resolve_row_strides(strides, cache_, opts_, &rows); !s.ok()) return s;
  const int threads = num_threads_;
  // Allocation comes first: once the cache is written nothing may fail.
  std::unique_ptr<float[]> scratch(new float[scratch_floats_ * size_t(threads)]);
  std::unique_ptr<float[]> partials(
      new float[partial_floats(opts_.num_q_heads, cache_.head_dim) * size_t(num_partials_)]);
  std::vector<int64_t> busy_ns(size_t(threads), 0);
  t_last_call_busy.resize(size_t(threads));

  // The decode kernel writes its sequences' new tokens itself (fused), but
  // for those of pages another sequence reads; every other new token is
  // written first, since other items' rows read it.
  uint8_t* cache = static_cast<uint8_t*>(kv_cache);
  const bool fused_decode = opts_.update_kv_cache && tuning_.decode_kernel && tuning_.fused_update;
  if (opts_.update_kv_cache)
    write_new_tokens(keys, values, rows, cache, fused_decode, threads);

  AttentionCall call;
  call.queries = queries;
  call.out = out;
  call.cache = cache;
  call.layout = layout_;
  call.act_dtype = opts_.act_dtype;
  call.num_q_heads = opts_.num_q_heads;
  call.group = opts_.num_q_heads / cache_.num_kv_heads;
  call.sm_scale = opts_.sm_scale;
  call.soft_cap = opts_.soft_cap;
  call.q_scale = opts_.q_scale;
  call.k_scale = opts_.k_scale;
  call.v_scale = opts_.v_scale;
  call.causal = opts_.causal;
  call.sliding_window = opts_.sliding_window;
  call.sinks = sinks_.empty() ? nullptr : sinks_.data();
  call.kv_lens = kv_lens_.data();
  call.cu_q_lens = cu_q_lens_.data();
  call.page_table = page_table_.data();
  call.pages_per_seq = pages_per_seq_;
  call.decode_keys = fused_decode ? keys : nullptr;
  call.decode_values = fused_decode ? values : nullptr;
  call.q_row_stride = rows.queries;
  call.k_row_stride = rows.keys;
  call.v_row_stride = rows.values;
  call.decode_written_first = written_first_.empty() || !fused_decode ? nullptr : written_first_.data();
  call.partials = partials.get();
  call.prefetch = tuning_.prefetch ? 1 : 0;
  call.pair_tiles = tuning_.pair_tiles ? 1 : 0;

  // Each thread adds up the time it spends in items (a clock read per item:
  // tens of ns against items of tens of us and more).
  const int64_t phase_start = now_ns();
  ThreadPool::global().parallel_for(int64_t(items_.size()), threads, [&](int64_t i, int thread) {
    const int64_t item_start = now_ns();
    const PlannedItem& p = items_[size_t(i)];
    float* s = scratch.get() + scratch_floats_ * size_t(thread);
    switch (p.kind) {
      case SeqKind::kDecode: kernels_.decode(call, p.item, s); break;
      case SeqKind::kPrefill: kernels_.prefill(call, p.item, s); break;
      case SeqKind::kMixed: kernels_.mixed(call, p.item, s); break;
      case SeqKind::kGeneral: kernels_.general(call, p.item, s); break;
    }
    busy_ns[size_t(thread)] += now_ns() - item_start;
  });
  const double phase_ns = double(std::max<int64_t>(1, now_ns() - phase_start));
  for (int t = 0; t < threads; ++t) t_last_call_busy[size_t(t)] = double(busy_ns[size_t(t)]) / phase_ns;
  ThreadPool::global().parallel_for(int64_t(merges_.size()), threads, [&](int64_t i, int) {
    const SplitMerge& m = merges_[size_t(i)];
    merge_partials(call.partials + partial_floats(opts_.num_q_heads, cache_.head_dim) * m.first,
                   m.count, opts_.num_q_heads, cache_.head_dim, opts_.v_scale, opts_.act_dtype, out,
                   cu_q_lens_[m.seq]);
  });
  return {};
}

}  // namespace rpa
