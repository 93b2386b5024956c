// rpa-bench --tiny-call: the C call on the tiny decode that
// bench/python/overhead.py times through Python, so that the Python layer's
// cost is a difference between two numbers measured on one machine.
#pragma once

namespace rpa_bench {

// Prints the median time of rpa_ragged_paged_attention on 1 sequence of
// kv_len 16 (32 q / 8 kv heads x 128, bf16, page size 16) over reps calls.
// Returns 0, or 1 if a call failed.
int run_tiny_call(int reps, int threads);

}  // namespace rpa_bench
