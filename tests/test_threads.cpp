// Four host threads calling at once, each on its own cache (one-call path, and
// one shared plan run concurrently), give bit-for-bit the serial results.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "helpers.hpp"

namespace {

struct Job {
  rt::Case c;
  rt::Layer l;
  std::vector<uint8_t> cache;  // serial result
  std::vector<uint8_t> out;    // serial result
};

std::vector<Job> make_jobs(int n, uint64_t salt) {
  std::vector<Job> jobs;
  const rpa_dtype caches[] = {RPA_BF16, RPA_FP8_E4M3, RPA_F32, RPA_INT8};
  const rpa_dtype acts[] = {RPA_BF16, RPA_F32, RPA_F16, RPA_BF16};
  for (int i = 0; i < n; ++i) {
    rt::Shape s;
    s.num_kv_heads = 2;
    s.group = 4;
    s.head_dim = 64;
    s.page_size = 16;
    s.cache = caches[i % 4];
    s.act = acts[i % 4];
    s.seqs = {{1, 300 + 37 * i}, {1, 50}, {24, 24}, {12, 90}, {5, 33}};
    s.decode_end = 2;
    s.prefill_end = 3;
    rt::Rng rng(rt::base_seed() + salt + i);
    Job j;
    j.c = rt::build_case(s, rng);
    j.c.opts.num_threads = i % 2 ? 2 : 0;
    if (i % 3 == 0) j.c.opts.soft_cap = 20.0f;
    j.l = rt::make_layer(j.c, rng);
    jobs.push_back(std::move(j));
  }
  return jobs;
}

TEST(Threads, ConcurrentCallsMatchSerialBitExactly) {
  std::vector<Job> jobs = make_jobs(4, 1);
  for (Job& j : jobs) {
    rt::ActBuf out;
    ASSERT_EQ(rt::run_one_call(j.c, j.l, j.cache, out), RPA_OK);
    ASSERT_TRUE(rt::check_call(j.c, j.l, j.cache, out));
    j.out = out.bytes;
  }
  constexpr int kRounds = 3;
  std::atomic<int> mismatches{0}, errors{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < jobs.size(); ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int r = 0; r < kRounds; ++r) {
        std::vector<uint8_t> cache;
        rt::ActBuf out;
        if (rt::run_one_call(jobs[t].c, jobs[t].l, cache, out) != RPA_OK) ++errors;
        if (cache != jobs[t].cache || out.bytes != jobs[t].out) ++mismatches;
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "concurrent results differ from serial ones";
}

TEST(Threads, OnePlanRunFromFourThreads) {
  // One batch, four layers (separate caches and activations), one plan shared by all threads.
  std::vector<Job> jobs = make_jobs(1, 2);
  const rt::Case c = jobs[0].c;
  std::vector<rt::Layer> layers;
  rt::Rng rng(rt::base_seed() + 3);
  for (int i = 0; i < 4; ++i) layers.push_back(rt::make_layer(c, rng));
  const rpa_batch b = c.batch();
  const rpa_options o = c.options();
  rpa_status st;
  rpa_plan* plan = rpa_plan_create(&c.cfg, &b, &o, &st, nullptr, 0);
  ASSERT_NE(plan, nullptr);
  const size_t out_n = size_t(c.max_num_tokens) * c.hq() * c.cfg.head_dim;
  std::vector<std::vector<uint8_t>> want_cache(4), want_out(4);
  for (int i = 0; i < 4; ++i) {
    std::vector<uint8_t> cache = layers[i].cache;
    rt::ActBuf out(c.opts.act_dtype, out_n, rt::kOutCanary);
    ASSERT_EQ(rpa_plan_run(plan, layers[i].q.data(), layers[i].k.data(), layers[i].v.data(), cache.data(), out.data(),
                           nullptr, 0),
              RPA_OK);
    ASSERT_TRUE(rt::check_call(c, layers[i], cache, out));
    want_cache[i] = cache;
    want_out[i] = out.bytes;
  }
  std::atomic<int> mismatches{0}, errors{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      for (int r = 0; r < 3; ++r) {
        std::vector<uint8_t> cache = layers[t].cache;
        rt::ActBuf out(c.opts.act_dtype, out_n, rt::kOutCanary);
        if (rpa_plan_run(plan, layers[t].q.data(), layers[t].k.data(), layers[t].v.data(), cache.data(), out.data(),
                         nullptr, 0) != RPA_OK)
          ++errors;
        if (cache != want_cache[t] || out.bytes != want_out[t]) ++mismatches;
      }
    });
  }
  go = true;
  for (auto& th : threads) th.join();
  rpa_plan_destroy(plan);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(mismatches.load(), 0) << "concurrent plan runs differ from serial ones";
}

}  // namespace

namespace {

// rpa_last_call_busy reports, per host thread, each worker's share of the
// last call's attention phase.
TEST(Threads, LastCallBusyFractions) {
  std::thread([] {
    double busy[4] = {-1, -1, -1, -1};
    EXPECT_EQ(rpa_last_call_busy(busy, 4), 0) << "no call yet on this host thread";
    EXPECT_EQ(busy[0], -1);
    std::vector<Job> jobs = make_jobs(1, 7);
    jobs[0].c.opts.num_threads = 3;
    rt::ActBuf out;
    ASSERT_EQ(rt::run_one_call(jobs[0].c, jobs[0].l, jobs[0].cache, out), RPA_OK);
    ASSERT_EQ(rpa_last_call_busy(busy, 4), 3);
    EXPECT_EQ(busy[3], -1) << "only the call's threads are written";
    double total = 0;
    for (int t = 0; t < 3; ++t) {
      EXPECT_GE(busy[t], 0.0);
      EXPECT_LE(busy[t], 1.0 + 1e-9);
      total += busy[t];
    }
    EXPECT_GT(total, 0.0);
    EXPECT_EQ(rpa_last_call_busy(nullptr, 0), 3);
  }).join();
}

}  // namespace
