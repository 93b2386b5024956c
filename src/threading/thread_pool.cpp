#include "threading/thread_pool.hpp"

#include <cstdlib>

namespace rpa {

ThreadPool& ThreadPool::global() {
  // Never destroyed: workers may still be parked at exit.
  static ThreadPool* pool = new ThreadPool();
  return *pool;
}

int default_num_threads() {
  static const int n = [] {
    if (const char* env = std::getenv("RPA_NUM_THREADS")) {
      const int v = std::atoi(env);
      if (v > 0) return v;
    }
    const unsigned hw = std::thread::hardware_concurrency();
    return hw > 0 ? int(hw) : 1;
  }();
  return n;
}

// Claims indices one at a time under the mutex: work items are coarse (a
// sequence's kv head and row block), so the lock is not what limits speed.
void ThreadPool::run_share(int thread) {
  for (;;) {
    int64_t i;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_ >= count_) return;
      i = next_++;
    }
    (*body_)(i, thread);
  }
}

void ThreadPool::worker_loop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return generation_ != seen && thread < team_size_; });
      seen = generation_;
    }
    run_share(thread);
    std::lock_guard<std::mutex> lock(mutex_);
    if (--running_ == 0) done_cv_.notify_one();
  }
}

void ThreadPool::parallel_for(int64_t count, int threads, const Body& body) {
  if (count <= 0) return;
  if (threads > count) threads = int(count);
  std::unique_lock<std::mutex> call(call_mutex_, std::try_to_lock);
  if (threads <= 1 || !call.owns_lock()) {
    for (int64_t i = 0; i < count; ++i) body(i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (int(workers_.size()) < threads - 1) {
      const int thread = int(workers_.size()) + 1;
      workers_.emplace_back([this, thread] { worker_loop(thread); });
    }
    body_ = &body;
    count_ = count;
    next_ = 0;
    team_size_ = threads;
    running_ = threads - 1;
    ++generation_;
  }
  work_cv_.notify_all();
  run_share(0);
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [&] { return running_ == 0; });
  team_size_ = 0;
  body_ = nullptr;
}

}  // namespace rpa
