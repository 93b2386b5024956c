// Every rule of the API's "Rules" section, checked before anything is written:
// a call that fails here has touched neither the cache nor `out`.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.hpp"
#include "rpa/rpa.h"

namespace rpa {

Status validate_cache_config(const rpa_cache_config* c);

// The options, given a valid cache config.
Status validate_options(const rpa_options* o, const rpa_cache_config& c);

// Positions and query rows are int32, and the kernels step past the last one
// (64-token blocks, pages of up to 1024 tokens): a batch that keeps every
// rule but has a kv_len, or more tokens in all, beyond this is refused with
// RPA_ERR_UNSUPPORTED before anything is written. 2^30 tokens is ~100x the
// longest context of any model in use.
inline constexpr int32_t kMaxPositions = int32_t{1} << 30;

// The batch, given a valid cache config and options: sequence ranges, page
// tables, and (when the call writes the cache) that a page receiving new
// tokens has one writer, which lists it once; then the kMaxPositions limit.
// Other sequences may read a written page: when shared_writers is given, the
// writers of such pages are appended to it, in sequence order.
Status validate_batch(const rpa_batch* b, const rpa_cache_config& c, const rpa_options& o,
                      std::vector<int32_t>* shared_writers = nullptr);

// A batched token write or read (rpa_cache_write_tokens, rpa_cache_read_tokens),
// given a valid cache config: the struct's size (RPA_ERR_UNSUPPORTED when it is
// not this version's), fields, buffers, and every slot in [-1, num_pages *
// page_size); a write also refuses two tokens for one slot.
Status validate_token_batch(const rpa_token_batch* t, const rpa_cache_config& c, const void* k,
                            const void* v, bool write);

// The per-call buffers.
Status validate_buffers(const void* queries, const void* keys, const void* values,
                        const void* kv_cache, const void* out, const rpa_options& o);

// Elements between consecutive token rows of queries, keys and values; 0
// means packed (a row: num_q_heads or num_kv_heads times head_dim).
struct RowStrides {
  int64_t queries = 0;
  int64_t keys = 0;
  int64_t values = 0;
};
// Each stride 0 or in [its row, 2^40]; *resolved gets the rows for the zeros.
Status resolve_row_strides(const RowStrides& strides, const rpa_cache_config& c,
                           const rpa_options& o, RowStrides* resolved);

}  // namespace rpa
