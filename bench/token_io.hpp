// rpa-bench --token-io: the batched token write and read (rpa_cache_write_tokens,
// rpa_cache_read_tokens) at Llama-3-8B's kv shape, as GB/s against B_stream.
#pragma once

#include <cstdint>
#include <vector>

#include "limits.hpp"
#include "memory.hpp"
#include "rpa/rpa.h"

namespace rpa_bench {

struct TokenIoRun {
  std::vector<int32_t> page_sizes;
  std::vector<rpa_dtype> cache_dtypes;
  const char* (*dtype_name)(rpa_dtype);
  int threads;
  bool smoke;
};

// Prints one row per (cache dtype, page size, token count, direction):
// 32 decode tokens (each in a page of its own) and 2048 prefill tokens
// (consecutive slots of shuffled pages). Bytes moved = the rows' bytes in
// bf16 + the cache bytes written or read. Returns 0, or 1 if a call failed.
int run_token_io(const TokenIoRun& run, const HugeBuffer& stream_buffer, const CpuFeatures& cpu);

}  // namespace rpa_bench
