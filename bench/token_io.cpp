#include "token_io.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>

#include "workloads.hpp"

namespace rpa_bench {
namespace {

// Slots of n tokens: decodes one per random page (slot page_size - 1, as a
// decode appends), prefills consecutive slots of random pages.
std::vector<int64_t> token_slots(int32_t n, bool decodes, int32_t page_size, int32_t num_pages) {
  std::vector<int32_t> pages(static_cast<size_t>(num_pages));
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), std::mt19937(3));
  std::vector<int64_t> slots(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    const int64_t page = decodes ? pages[size_t(i)] : pages[size_t(i / page_size)];
    slots[size_t(i)] = page * page_size + (decodes ? page_size - 1 : i % page_size);
  }
  return slots;
}

// Median seconds of `reps` calls of fn (after one warm-up call).
template <class Fn>
double median_seconds(int reps, Fn&& fn) {
  fn();
  std::vector<double> t(static_cast<size_t>(reps));
  for (double& x : t) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    x = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int run_token_io(const TokenIoRun& run, const HugeBuffer& stream_buffer, const CpuFeatures& cpu) {
  const ModelShape shape{32, 8, 128};
  const int reps = run.smoke ? 3 : 50;
  std::printf("batched token I/O, Llama-3-8B kv shape (8 kv heads x 128), bf16 rows, %d threads\n",
              run.threads);
  std::printf("%-9s %5s %6s %-6s %10s %9s %9s %6s\n", "cache", "page", "tokens", "call", "time_us",
              "GB/s", "B_stream", "ratio");
  int failures = 0;
  for (rpa_dtype dtype : run.cache_dtypes) {
    for (int32_t page_size : run.page_sizes) {
      const rpa_cache_config cfg =
          cache_config_for(shape, page_size, dtype, 2048 / page_size + 64, size_t{256} << 20);
      HugeBuffer cache(rpa_cache_bytes(&cfg), run.threads);
      fill_cache(cache.data(), rpa_cache_bytes(&cfg), dtype, run.threads);
      for (int32_t n : {32, 2048}) {
        const std::vector<int64_t> slots = token_slots(n, n == 32, page_size, cfg.num_pages);
        const size_t row = size_t(shape.num_kv_heads) * shape.head_dim;
        std::vector<uint16_t> k(size_t(n) * row, 0x3f80), v(size_t(n) * row, 0xbf80);
        rpa_token_batch t{};
        t.struct_size = sizeof t;
        t.num_tokens = n;
        t.slot_mapping = slots.data();
        t.dtype = RPA_BF16;
        t.k_scale = t.v_scale = cache_scale(dtype);
        t.num_threads = run.threads;
        const double bytes = 2.0 * n * row * (2 + dtype_bytes(dtype));
        for (const bool write : {true, false}) {
          char err[512] = "";
          rpa_status st = RPA_OK;
          const double b_stream = measure_stream(stream_buffer, run.threads, run.smoke ? 1 : 3, cpu);
          const double s = median_seconds(reps, [&] {
            st = write ? rpa_cache_write_tokens(cache.data(), &cfg, &t, k.data(), v.data(), err, sizeof err)
                       : rpa_cache_read_tokens(cache.data(), &cfg, &t, k.data(), v.data(), err, sizeof err);
          });
          if (st != RPA_OK) {
            std::fprintf(stderr, "rpa-bench: token I/O failed: %s\n", err);
            ++failures;
            continue;
          }
          const double gbps = bytes / s / 1e9;
          std::printf("%-9s %5d %6d %-6s %10.1f %9.2f %9.2f %6.2f\n", run.dtype_name(dtype), page_size, n,
                      write ? "write" : "read", s * 1e6, gbps, b_stream, gbps / b_stream);
        }
      }
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace rpa_bench
