#include "tiny_call.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "rpa/rpa.h"

namespace rpa_bench {

int run_tiny_call(int reps, int threads) {
  constexpr int32_t kQHeads = 32, kKvHeads = 8, kHeadDim = 128, kPage = 16, kPages = 4;
  const rpa_cache_config cfg{kKvHeads, kHeadDim, kPage, kPages, RPA_BF16};
  std::vector<uint8_t> cache(rpa_cache_bytes(&cfg));
  std::vector<uint16_t> q(kQHeads * kHeadDim, 0x3f80), k(kKvHeads * kHeadDim, 0x3f80),
      v(kKvHeads * kHeadDim, 0x3f80), out(kQHeads * kHeadDim);
  const int32_t kv_lens[] = {16}, pages[] = {2}, cu_q_lens[] = {0, 1}, distribution[] = {1, 1, 1};
  const rpa_batch batch{kv_lens, pages, cu_q_lens, distribution, 1, 1, 1};
  rpa_options opts{};
  opts.num_q_heads = kQHeads;
  opts.act_dtype = RPA_BF16;
  opts.sm_scale = 0.088f;
  opts.causal = 1;
  opts.update_kv_cache = 1;
  opts.num_threads = threads;
  char err[256] = "";
  std::vector<double> us;
  for (int i = -100; i < reps; ++i) {  // the first 100 calls warm up
    const auto t0 = std::chrono::steady_clock::now();
    const rpa_status s = rpa_ragged_paged_attention(q.data(), k.data(), v.data(), cache.data(),
                                                    &cfg, &batch, &opts, out.data(), err,
                                                    sizeof err);
    const auto t1 = std::chrono::steady_clock::now();
    if (s != RPA_OK) {
      std::fprintf(stderr, "rpa-bench: %s\n", err);
      return 1;
    }
    if (i >= 0) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  std::printf("tiny decode C call: %.2f us (median of %d, %d thread(s), isa %s)\n",
              us[us.size() / 2], reps, threads, rpa_isa());
  return 0;
}

}  // namespace rpa_bench
