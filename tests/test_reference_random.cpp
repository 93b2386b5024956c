// Seeded random ragged batches against the float64 reference, for every
// (cache dtype x activation dtype) pair: decode / prefill / chunked prefill mixes,
// random features, GQA 1..8, odd head dims, page sizes 1..1024, shuffled pages,
// garbage padding, one-call and plan/run paths. Each case also checks the
// cache byte for byte and that padding rows of out are untouched (check_call).
//
// A failure prints the case and how to rerun it alone (RPA_TEST_CASE_SEED);
// RPA_TEST_SEED=<n> changes the base seed, RPA_TEST_ITERS=<n> the count per pair.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <string>

#include "helpers.hpp"

namespace {

struct Combo {
  rpa_dtype cache;
  rpa_dtype act;
};

void PrintTo(const Combo& c, std::ostream* os) {
  *os << ref::dtype_name(c.cache) << " cache, " << ref::dtype_name(c.act) << " act";
}

// Fewer cases under the sanitizers, whose run is about memory errors, not numerics.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kDefaultIters = 100;
#else
constexpr int kDefaultIters = 300;
#endif

class RandomBatches : public ::testing::TestWithParam<Combo> {};

TEST_P(RandomBatches, MatchFloat64Reference) {
  const Combo combo = GetParam();
  // RPA_TEST_CASE_SEED=<seed printed on a failure> reruns just that case.
  const char* only = std::getenv("RPA_TEST_CASE_SEED");
  const int iters = only && *only ? 1 : rt::iterations(kDefaultIters);
  rt::CheckStats stats;
  int failures = 0, plan_cases = 0;
  for (int it = 0; it < iters && failures < 3; ++it) {
    const uint64_t seed = only && *only ? std::strtoull(only, nullptr, 0)
                                        : rt::base_seed() * 1000003ULL + uint64_t(combo.cache) * 7919 +
                                              uint64_t(combo.act) * 104729 + uint64_t(it) * 2654435761ULL;
    const rt::Case c = rt::random_case(seed, combo.cache, combo.act);
    rt::Rng rng(seed ^ 0xABCDEF);
    // One call for two thirds; the plan path with 1-3 layers (separate caches) for the rest.
    const int layers = seed % 3 == 2 ? 1 + int(seed / 3 % 3) : 0;
    plan_cases += layers > 0;
    const ::testing::AssertionResult r = rt::run_and_check(c, rng, layers, &stats);
    if (!r) {
      ++failures;
      ADD_FAILURE() << "case " << it << " (" << (layers ? "plan/run, " + std::to_string(layers) + " layers" : "one call")
                    << "; rerun with RPA_TEST_CASE_SEED=0x" << std::hex << seed << std::dec << " --gtest_filter='*"
                    << ref::dtype_name(combo.cache) << "_cache_" << ref::dtype_name(combo.act) << "_act'): "
                    << r.message();
    }
  }
  std::printf("[ %s cache, %s act ] %d cases (%d via plan), worst |err|/tol = %.3f\n",
              ref::dtype_name(combo.cache), ref::dtype_name(combo.act), iters, plan_cases, stats.worst_ratio);
}

std::vector<Combo> all_combos() {
  std::vector<Combo> v;
  for (rpa_dtype cache : {RPA_F32, RPA_BF16, RPA_F16, RPA_FP8_E4M3, RPA_FP8_E5M2, RPA_INT8})
    for (rpa_dtype act : {RPA_F32, RPA_BF16, RPA_F16}) v.push_back({cache, act});
  return v;
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, RandomBatches, ::testing::ValuesIn(all_combos()),
                         [](const ::testing::TestParamInfo<Combo>& info) {
                           return std::string(ref::dtype_name(info.param.cache)) + "_cache_" +
                                  ref::dtype_name(info.param.act) + "_act";
                         });

}  // namespace
