#include "validate/validate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "cache/layout.hpp"
#include "common/dtype.hpp"

namespace rpa {

Status validate_cache_config(const rpa_cache_config* c) {
  if (c == nullptr) return RPA_INVALID("cache config is NULL");
  if (c->num_kv_heads < 1)
    return RPA_INVALID("cache.num_kv_heads %d must be >= 1", c->num_kv_heads);
  if (c->head_dim < 1 || c->head_dim > 512)
    return RPA_INVALID("cache.head_dim %d out of range 1..512", c->head_dim);
  if (c->page_size < 1 || c->page_size > 1024)
    return RPA_INVALID("cache.page_size %d out of range 1..1024", c->page_size);
  if (c->num_pages < 1) return RPA_INVALID("cache.num_pages %d must be >= 1", c->num_pages);
  if (!is_valid_dtype(raw_dtype(c->dtype)))
    return RPA_INVALID("cache.dtype %d is not an rpa_dtype", raw_dtype(c->dtype));
  if (cache_bytes(*c) == 0)
    return RPA_INVALID("cache.num_pages %d: the cache size overflows size_t", c->num_pages);
  return {};
}

namespace {

Status check_scale(const char* field, float scale) {
  if (!std::isfinite(scale) || scale < 0)
    return RPA_INVALID("opts.%s %g must be finite and >= 0", field, double(scale));
  return {};
}

}  // namespace

Status validate_options(const rpa_options* o, const rpa_cache_config& c) {
  if (o == nullptr) return RPA_INVALID("options are NULL");
  if (o->num_q_heads < 1) return RPA_INVALID("opts.num_q_heads %d must be >= 1", o->num_q_heads);
  if (o->num_q_heads % c.num_kv_heads != 0)
    return RPA_INVALID("opts.num_q_heads %d is not a multiple of cache.num_kv_heads %d",
                       o->num_q_heads, c.num_kv_heads);
  if (!is_act_dtype(raw_dtype(o->act_dtype)))
    return RPA_INVALID("opts.act_dtype %d must be RPA_F32, RPA_BF16 or RPA_F16",
                       raw_dtype(o->act_dtype));
  if (!std::isfinite(o->sm_scale))
    return RPA_INVALID("opts.sm_scale %g must be finite", double(o->sm_scale));
  if (o->sliding_window < 0)
    return RPA_INVALID("opts.sliding_window %d must be >= 0", o->sliding_window);
  if (!std::isfinite(o->soft_cap) || o->soft_cap < 0)
    return RPA_INVALID("opts.soft_cap %g must be finite and >= 0", double(o->soft_cap));
  for (auto [field, scale] : {std::pair{"q_scale", o->q_scale}, std::pair{"k_scale", o->k_scale},
                              std::pair{"v_scale", o->v_scale}}) {
    if (Status s = check_scale(field, scale); !s.ok()) return s;
  }
  if (o->num_threads < 0)
    return RPA_INVALID("opts.num_threads %d must be >= 0 (0 = library default)", o->num_threads);
  return {};
}

namespace {

// A page-table entry that receives new tokens: which sequence writes the page,
// through which of its entries.
struct PageWrite {
  int32_t page;
  int32_t seq;
  int32_t entry;
};

// The update rules (API.md, version 1.1): a page that receives new tokens has
// one writer, which lists it once among its entries in use; other sequences
// may read it. Sorts the written entries, then looks every entry in use up
// among them. Appends to *shared_writers each writer whose written pages
// another sequence reads, in sequence order.
Status check_write_conflicts(const rpa_batch& b, const rpa_cache_config& c, int32_t num_seqs,
                             std::vector<int32_t>* shared_writers) {
  std::vector<PageWrite> written;
  for (int32_t i = 0; i < num_seqs; ++i) {
    const int32_t kv_len = b.kv_lens[i];
    const int32_t q_len = b.cu_q_lens[i + 1] - b.cu_q_lens[i];
    const int32_t first = (kv_len - q_len) / c.page_size;
    const int32_t last = (kv_len - 1) / c.page_size;
    for (int32_t e = first; e <= last; ++e)
      written.push_back({b.page_indices[int64_t(i) * b.pages_per_seq + e], i, e});
  }
  std::sort(written.begin(), written.end(),
            [](const PageWrite& x, const PageWrite& y) { return x.page < y.page; });
  for (size_t k = 1; k < written.size(); ++k) {
    const PageWrite& a = written[k - 1];
    const PageWrite& w = written[k];
    if (w.page != a.page) continue;
    if (w.seq == a.seq) {
      return RPA_INVALID(
          "sequence %d: page %d receives new tokens through two entries "
          "(page_indices[%d * pages_per_seq + %d] and + %d); a writer lists its page once",
          w.seq, w.page, w.seq, std::min(a.entry, w.entry), std::max(a.entry, w.entry));
    }
    return RPA_INVALID(
        "sequence %d: page %d (page_indices[%d * pages_per_seq + %d]) receives new tokens "
        "but is also written by sequence %d (entry %d)",
        w.seq, w.page, w.seq, w.entry, a.seq, a.entry);
  }
  std::vector<uint8_t> read_by_others(size_t(num_seqs), 0);
  for (int32_t i = 0; i < num_seqs; ++i) {
    const int64_t used = (int64_t(b.kv_lens[i]) + c.page_size - 1) / c.page_size;
    for (int64_t e = 0; e < used; ++e) {
      const int32_t page = b.page_indices[int64_t(i) * b.pages_per_seq + e];
      auto it = std::lower_bound(written.begin(), written.end(), page,
                                 [](const PageWrite& x, int32_t p) { return x.page < p; });
      if (it == written.end() || it->page != page || (it->seq == i && it->entry == e)) continue;
      if (it->seq != i) {
        read_by_others[size_t(it->seq)] = 1;
        continue;
      }
      return RPA_INVALID(
          "sequence %d: page %d is listed twice (page_indices[%d * pages_per_seq + %lld] and "
          "+ %d) and receives new tokens through entry %d; a writer lists its page once",
          i, page, i, static_cast<long long>(std::min<int64_t>(e, it->entry)),
          int32_t(std::max<int64_t>(e, it->entry)), it->entry);
    }
  }
  for (int32_t i = 0; shared_writers != nullptr && i < num_seqs; ++i)
    if (read_by_others[size_t(i)]) shared_writers->push_back(i);
  return {};
}

}  // namespace

Status validate_batch(const rpa_batch* b, const rpa_cache_config& c, const rpa_options& o,
                      std::vector<int32_t>* shared_writers) {
  if (b == nullptr) return RPA_INVALID("batch is NULL");
  if (b->distribution == nullptr) return RPA_INVALID("batch.distribution is NULL");
  if (b->max_num_seqs < 0) return RPA_INVALID("batch.max_num_seqs %d must be >= 0", b->max_num_seqs);
  if (b->pages_per_seq < 0)
    return RPA_INVALID("batch.pages_per_seq %d must be >= 0", b->pages_per_seq);
  if (b->max_num_tokens < 0)
    return RPA_INVALID("batch.max_num_tokens %d must be >= 0", b->max_num_tokens);
  const int32_t decode_end = b->distribution[0];
  const int32_t prefill_end = b->distribution[1];
  const int32_t num_seqs = b->distribution[2];
  if (decode_end < 0 || decode_end > prefill_end || prefill_end > num_seqs ||
      num_seqs > b->max_num_seqs) {
    return RPA_INVALID(
        "batch.distribution (decode_end %d, prefill_end %d, num_seqs %d) must satisfy "
        "0 <= decode_end <= prefill_end <= num_seqs <= max_num_seqs %d",
        decode_end, prefill_end, num_seqs, b->max_num_seqs);
  }
  if (b->cu_q_lens == nullptr) return RPA_INVALID("batch.cu_q_lens is NULL");
  if (num_seqs > 0 && b->kv_lens == nullptr) return RPA_INVALID("batch.kv_lens is NULL");
  if (num_seqs > 0 && b->page_indices == nullptr) return RPA_INVALID("batch.page_indices is NULL");
  if (b->cu_q_lens[0] != 0) return RPA_INVALID("batch.cu_q_lens[0] %d must be 0", b->cu_q_lens[0]);
  if (b->cu_q_lens[num_seqs] > b->max_num_tokens) {
    return RPA_INVALID("batch.cu_q_lens[num_seqs] %d exceeds batch.max_num_tokens %d",
                       b->cu_q_lens[num_seqs], b->max_num_tokens);
  }
  for (int32_t i = 0; i < num_seqs; ++i) {
    const int64_t q_len = int64_t(b->cu_q_lens[i + 1]) - b->cu_q_lens[i];
    const int32_t kv_len = b->kv_lens[i];
    if (q_len < 0)
      return RPA_INVALID("sequence %d: batch.cu_q_lens decreases (%d then %d)", i,
                         b->cu_q_lens[i], b->cu_q_lens[i + 1]);
    if (q_len < 1) return RPA_INVALID("sequence %d: q_len 0 (batch.cu_q_lens) must be >= 1", i);
    if (q_len > kv_len)
      return RPA_INVALID("sequence %d: q_len %lld > kv_len %d (batch.kv_lens)", i,
                         static_cast<long long>(q_len), kv_len);
    if (i < decode_end && q_len != 1)
      return RPA_INVALID("sequence %d: q_len %lld in the decode range (batch.distribution[0] = "
                         "%d) must be 1", i, static_cast<long long>(q_len), decode_end);
    const int64_t pages = (int64_t(kv_len) + c.page_size - 1) / c.page_size;
    if (pages > b->pages_per_seq)
      return RPA_INVALID("sequence %d: kv_len %d needs %lld pages > batch.pages_per_seq %d", i,
                         kv_len, static_cast<long long>(pages), b->pages_per_seq);
    for (int64_t e = 0; e < pages; ++e) {
      const int32_t page = b->page_indices[int64_t(i) * b->pages_per_seq + e];
      if (page < 0 || page >= c.num_pages)
        return RPA_INVALID("sequence %d: batch.page_indices[%d * pages_per_seq + %lld] = %d out "
                           "of range [0, cache.num_pages %d)", i, i,
                           static_cast<long long>(e), page, c.num_pages);
    }
  }
  if (o.update_kv_cache) {
    if (Status s = check_write_conflicts(*b, c, num_seqs, shared_writers); !s.ok()) return s;
  }
  for (int32_t i = 0; i < num_seqs; ++i) {
    if (b->kv_lens[i] > kMaxPositions)
      return Status::make(RPA_ERR_UNSUPPORTED,
                          "sequence %d: kv_len %d (batch.kv_lens) is beyond this library's "
                          "2^30 positions", i, b->kv_lens[i]);
  }
  if (b->cu_q_lens[num_seqs] > kMaxPositions)
    return Status::make(RPA_ERR_UNSUPPORTED,
                        "batch.cu_q_lens[num_seqs] %d: more tokens in one call than this "
                        "library's 2^30", b->cu_q_lens[num_seqs]);
  return {};
}

namespace {

// No two tokens write one slot: the valid slots sorted with their indices.
// A stride between token rows (elements): 0 (packed) or in [row, 2^40], row
// being row_name * head_dim elements; `prefix` names the struct, if any.
Status check_row_stride(const char* prefix, const char* field, int64_t stride,
                        const char* row_name, int64_t row) {
  if (stride == 0 || (stride >= row && stride <= (int64_t{1} << 40))) return {};
  return RPA_INVALID("%s%s %lld must be 0 or in [%s * head_dim %lld, 2^40]", prefix, field,
                     static_cast<long long>(stride), row_name, static_cast<long long>(row));
}

Status check_distinct_slots(const rpa_token_batch& t, const rpa_cache_config& c) {
  std::vector<std::pair<int64_t, int32_t>> slots;
  slots.reserve(size_t(t.num_tokens));
  for (int32_t i = 0; i < t.num_tokens; ++i)
    if (t.slot_mapping[i] >= 0) slots.push_back({t.slot_mapping[i], i});
  std::sort(slots.begin(), slots.end());
  for (size_t j = 1; j < slots.size(); ++j) {
    if (slots[j].first != slots[j - 1].first) continue;
    const int64_t slot = slots[j].first;
    return RPA_INVALID("tokens.slot_mapping[%d] and [%d] both write slot %lld (page %lld, slot %lld)",
                       slots[j - 1].second, slots[j].second, static_cast<long long>(slot),
                       static_cast<long long>(slot / c.page_size),
                       static_cast<long long>(slot % c.page_size));
  }
  return {};
}

}  // namespace

Status validate_token_batch(const rpa_token_batch* t, const rpa_cache_config& c, const void* k,
                            const void* v, bool write) {
  if (t == nullptr) return RPA_INVALID("tokens (rpa_token_batch) is NULL");
  if (t->struct_size != sizeof(rpa_token_batch)) {
    return Status::make(RPA_ERR_UNSUPPORTED,
                        "tokens.struct_size %zu is not sizeof(rpa_token_batch) %zu of this "
                        "library's ABI version 1.1",
                        t->struct_size, sizeof(rpa_token_batch));
  }
  if (t->num_tokens < 0) return RPA_INVALID("tokens.num_tokens %d must be >= 0", t->num_tokens);
  if (t->num_tokens > 0 && t->slot_mapping == nullptr) return RPA_INVALID("tokens.slot_mapping is NULL");
  if (t->num_tokens > 0 && k == nullptr) return RPA_INVALID("k is NULL");
  if (t->num_tokens > 0 && v == nullptr) return RPA_INVALID("v is NULL");
  if (!is_act_dtype(raw_dtype(t->dtype)))
    return RPA_INVALID("tokens.dtype %d of k and v must be RPA_F32, RPA_BF16 or RPA_F16",
                       raw_dtype(t->dtype));
  const int64_t row = int64_t(c.num_kv_heads) * c.head_dim;
  for (auto [field, stride] : {std::pair{"k_stride", t->k_stride}, std::pair{"v_stride", t->v_stride}}) {
    if (Status s = check_row_stride("tokens.", field, stride, "num_kv_heads", row); !s.ok())
      return s;
  }
  for (auto [field, scale] : {std::pair{"k_scale", t->k_scale}, std::pair{"v_scale", t->v_scale}}) {
    if (!std::isfinite(scale) || scale < 0)
      return RPA_INVALID("tokens.%s %g must be finite and >= 0", field, double(scale));
  }
  if (t->num_threads < 0)
    return RPA_INVALID("tokens.num_threads %d must be >= 0 (0 = library default)", t->num_threads);
  const int64_t slots = int64_t(c.num_pages) * c.page_size;
  for (int32_t i = 0; i < t->num_tokens; ++i) {
    const int64_t slot = t->slot_mapping[i];
    if (slot < -1 || slot >= slots)
      return RPA_INVALID("tokens.slot_mapping[%d] = %lld out of range [-1, num_pages * page_size "
                         "%lld) (-1 = skip)",
                         i, static_cast<long long>(slot), static_cast<long long>(slots));
  }
  return write ? check_distinct_slots(*t, c) : Status{};
}

Status resolve_row_strides(const RowStrides& strides, const rpa_cache_config& c,
                           const rpa_options& o, RowStrides* resolved) {
  const int64_t q_row = int64_t(o.num_q_heads) * c.head_dim;
  const int64_t kv_row = int64_t(c.num_kv_heads) * c.head_dim;
  const struct {
    const char* field;
    const char* row_name;
    int64_t stride, row;
    int64_t* out;
  } fields[] = {{"q_stride", "num_q_heads", strides.queries, q_row, &resolved->queries},
                {"k_stride", "num_kv_heads", strides.keys, kv_row, &resolved->keys},
                {"v_stride", "num_kv_heads", strides.values, kv_row, &resolved->values}};
  for (const auto& f : fields) {
    if (Status s = check_row_stride("", f.field, f.stride, f.row_name, f.row); !s.ok()) return s;
  }
  for (const auto& f : fields) *f.out = f.stride == 0 ? f.row : f.stride;
  return {};
}

Status validate_buffers(const void* queries, const void* keys, const void* values,
                        const void* kv_cache, const void* out, const rpa_options& o) {
  if (queries == nullptr) return RPA_INVALID("queries is NULL");
  if (kv_cache == nullptr) return RPA_INVALID("kv_cache is NULL");
  if (out == nullptr) return RPA_INVALID("out is NULL");
  if (o.update_kv_cache) {
    if (keys == nullptr) return RPA_INVALID("keys is NULL but opts.update_kv_cache is set");
    if (values == nullptr) return RPA_INVALID("values is NULL but opts.update_kv_cache is set");
  }
  return {};
}

}  // namespace rpa
