// Version, ISA selection and default options.
#include <gtest/gtest.h>

#include <immintrin.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "helpers.hpp"

namespace {

TEST(Misc, Version) {
  ASSERT_NE(rpa_version(), nullptr);
  EXPECT_STREQ(rpa_version(), RPA_PROJECT_VERSION);
}

TEST(Misc, IsaPaths) {
  const char* isa = rpa_isa();
  ASSERT_NE(isa, nullptr);
  const std::string name = isa;
  EXPECT_TRUE(name == "scalar" || name == "avx2" || name == "avx512" || name == "avx512_bf16" || name == "amx")
      << name;
  EXPECT_EQ(rpa_isa_available(isa), 1) << "the chosen path must be available";
  EXPECT_EQ(rpa_isa_available("scalar"), 1);
  EXPECT_EQ(rpa_isa_available("no_such_isa"), 0);
  EXPECT_EQ(rpa_isa_available(""), 0);
  // The paths form a ladder: each one needs the one below it.
  const char* ladder[] = {"scalar", "avx2", "avx512", "avx512_bf16"};
  for (int i = 1; i < 4; ++i)
    if (rpa_isa_available(ladder[i])) {
      EXPECT_EQ(rpa_isa_available(ladder[i - 1]), 1) << ladder[i] << " without " << ladder[i - 1];
    }
  // A forced path is the path taken.
  if (const char* forced = std::getenv("RPA_ISA"); forced && *forced) {
    EXPECT_EQ(name, forced);
  }
}

TEST(Misc, DefaultOptions) {
  for (rpa_dtype act : {RPA_F32, RPA_BF16, RPA_F16}) {
    for (int D : {1, 64, 80, 128, 512}) {
      rpa_options o;
      std::memset(&o, 0xAB, sizeof o);
      rpa_default_options(&o, 12, act, D);
      EXPECT_EQ(o.num_q_heads, 12);
      EXPECT_EQ(o.act_dtype, act);
      EXPECT_FLOAT_EQ(o.sm_scale, float(1.0 / std::sqrt(double(D))));
      EXPECT_EQ(o.causal, 1);
      EXPECT_EQ(o.update_kv_cache, 1);
      EXPECT_EQ(o.sliding_window, 0);
      EXPECT_EQ(o.soft_cap, 0.0f);
      EXPECT_EQ(o.q_scale, 0.0f);
      EXPECT_EQ(o.k_scale, 0.0f);
      EXPECT_EQ(o.v_scale, 0.0f);
      EXPECT_EQ(o.sinks, nullptr);
      EXPECT_EQ(o.num_threads, 0);
    }
  }
}

// The library may use flush-to-zero or other MXCSR modes inside, but the
// caller's floating-point environment (rounding, FTZ/DAZ, exception masks) must
// be as it was after every call.
TEST(Misc, CallsLeaveTheCallersFloatingPointEnvironmentAlone) {
  for (rpa_dtype cache : {RPA_BF16, RPA_FP8_E4M3, RPA_F32}) {
    for (int threads : {1, 2}) {
      rt::Shape s;
      s.num_kv_heads = 2;
      s.group = 2;
      s.head_dim = 64;
      s.page_size = 16;
      s.cache = cache;
      s.act = cache == RPA_F32 ? RPA_F32 : RPA_BF16;
      s.seqs = {{1, 600}, {1, 20}, {9, 9}, {4, 30}};
      s.decode_end = 2;
      s.prefill_end = 3;
      rt::Rng rng(21);
      rt::Case c = rt::build_case(s, rng);
      c.opts.num_threads = threads;
      c.opts.q_scale = cache == RPA_FP8_E4M3 ? 0.01f : 0.0f;
      const rt::Layer l = rt::make_layer(c, rng);
      const unsigned before = _mm_getcsr();
      std::vector<uint8_t> cache_after;
      rt::ActBuf out;
      ASSERT_EQ(rt::run_one_call(c, l, cache_after, out), RPA_OK);
      EXPECT_EQ(_mm_getcsr(), before) << "rpa_ragged_paged_attention changed MXCSR";
      const rpa_batch b = c.batch();
      const rpa_options o = c.options();
      rpa_status st;
      rpa_plan* plan = rpa_plan_create(&c.cfg, &b, &o, &st, nullptr, 0);
      ASSERT_NE(plan, nullptr);
      ASSERT_EQ(rpa_plan_run(plan, l.q.data(), l.k.data(), l.v.data(), cache_after.data(), out.data(), nullptr, 0),
                RPA_OK);
      rpa_plan_destroy(plan);
      EXPECT_EQ(_mm_getcsr(), before) << "rpa_plan_run changed MXCSR";
      std::vector<float> k(128, 1.0f), v(128, 1.0f);
      ASSERT_EQ(rpa_cache_write(cache_after.data(), &c.cfg, 0, 0, k.data(), v.data(), RPA_F32, 0.3f, 0.3f, nullptr, 0),
                RPA_OK);
      ASSERT_EQ(rpa_cache_read(cache_after.data(), &c.cfg, 0, 0, k.data(), v.data(), RPA_BF16, 0.3f, 0.3f, nullptr, 0),
                RPA_OK);
      EXPECT_EQ(_mm_getcsr(), before) << "rpa_cache_write/read changed MXCSR";
    }
  }
}

// Run by ctest as rpa-tests-unavailable-isa: RPA_ISA names a path this build
// cannot run, so attention calls and plan creation say RPA_ERR_UNSUPPORTED and
// write nothing.
TEST(Isa, ForcedUnavailablePathIsUnsupported) {
  const char* forced = std::getenv("RPA_ISA");
  if (!std::getenv("RPA_TEST_EXPECT_UNSUPPORTED") || !forced) GTEST_SKIP() << "only with RPA_TEST_EXPECT_UNSUPPORTED";
  ASSERT_EQ(rpa_isa_available(forced), 0);
  rt::Shape s;
  s.num_kv_heads = 1;
  s.group = 2;
  s.head_dim = 8;
  s.page_size = 4;
  s.seqs = {{1, 5}, {3, 3}};
  s.decode_end = 1;
  s.prefill_end = 2;
  rt::Rng rng(1);
  const rt::Case c = rt::build_case(s, rng);
  std::string err;
  EXPECT_TRUE(rt::refused_untouched(c, rng, RPA_ERR_UNSUPPORTED, &err));
  const rpa_batch b = c.batch();
  const rpa_options o = c.options();
  rpa_status st = RPA_OK;
  EXPECT_EQ(rpa_plan_create(&c.cfg, &b, &o, &st, nullptr, 0), nullptr);
  EXPECT_EQ(st, RPA_ERR_UNSUPPORTED);
}

}  // namespace
