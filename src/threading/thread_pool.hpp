// A persistent team of worker threads shared by all calls of the process.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rpa {

class ThreadPool {
 public:
  using Body = std::function<void(int64_t index, int thread)>;

  // The process-wide pool; it grows to the largest team any call asks for.
  static ThreadPool& global();

  // Runs body(i, thread) for every i in [0, count) on at most `threads`
  // threads, the caller being thread 0; indices are claimed dynamically in
  // order, so callers put the costliest first. Returns when all are done.
  // Calls from several host threads are safe: while the team is busy with
  // one call, another runs its loop on its own thread alone.
  void parallel_for(int64_t count, int threads, const Body& body);

  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

 private:
  void worker_loop(int thread);
  void run_share(int thread);

  std::mutex call_mutex_;  // held by the call that owns the team
  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::vector<std::thread> workers_;  // thread i + 1
  const Body* body_ = nullptr;
  int64_t count_ = 0;
  int64_t next_ = 0;        // next unclaimed index, under mutex_
  int team_size_ = 0;       // threads taking part in the current call
  int running_ = 0;         // workers still inside the current call
  uint64_t generation_ = 0;
};

// Threads a call uses by default: RPA_NUM_THREADS, else all hardware threads.
int default_num_threads();

}  // namespace rpa
