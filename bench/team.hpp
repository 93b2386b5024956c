// A fork-join team of std::threads for the benchmark's own parallel work
// (touching and filling buffers, measuring the machine's limits).
#pragma once

#include <thread>
#include <vector>

namespace rpa_bench {

// Runs fn(tid) for tid in [0, threads) and returns when all are done; the
// calling thread is tid 0. A fresh team per call is cheap next to what it runs
// (every timed section lasts milliseconds and starts behind a barrier), and it
// keeps no idle threads around to compete with the library's own pool.
template <class Fn>
void run_team(int threads, const Fn& fn) {
  std::vector<std::thread> team;
  team.reserve(static_cast<size_t>(threads > 1 ? threads - 1 : 0));
  for (int t = 1; t < threads; ++t) team.emplace_back([&fn, t] { fn(t); });
  fn(0);
  for (std::thread& th : team) th.join();
}

}  // namespace rpa_bench
