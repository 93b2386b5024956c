// Hand-built edge cases against the float64 reference (each through the
// one-call path and a 2-layer plan): page size 1, one-token sequences, kv_len on
// page boundaries, contiguous / shuffled pages, GQA groups 1..8, odd head dims,
// empty batches, distribution extremes, head_dim 512 with page 1024, long
// decodes (split KV), thread counts, extreme options.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>

#include "helpers.hpp"

namespace {

using rt::Case;
using rt::Combo;
using rt::run_shape;
using rt::Shape;
using rt::shape;

TEST(EdgeCases, PageSizeOne) {
  run_shape(shape(2, 4, 7, 1, {{1, 1}, {1, 13}, {5, 5}, {3, 9}, {4, 4}}, 2, 4), "page size 1");
  Shape s = shape(1, 1, 8, 1, {{1, 1}, {1, 2}, {2, 2}}, 2, 2);
  s.share_pages = true;
  s.update = false;
  run_shape(s, "page size 1, shared pages, no update");
}

TEST(EdgeCases, OneTokenSequences) {
  run_shape(shape(2, 3, 16, 4, {{1, 1}, {1, 1}, {1, 1}, {1, 1}}, 2, 3), "kv_len 1 everywhere");
  run_shape(shape(1, 8, 3, 16, {{1, 1}}, 0, 1), "a single one-token prefill");
  run_shape(shape(1, 2, 9, 3, {{1, 1}}, 1, 1), "a single one-token decode");
}

TEST(EdgeCases, KvLenOnPageBoundaries) {
  for (int ps : {1, 3, 16}) {
    // kv_len a multiple of the page size; new tokens ending a page, filling
    // exactly one page, starting a fresh page, spanning pages.
    run_shape(shape(2, 2, 8, ps,
                    {{1, ps}, {1, 2 * ps}, {1, 2 * ps + 1}, {ps, ps}, {ps, 2 * ps}, {1, ps + 1}, {ps + 1, 3 * ps},
                     {2 * ps, 2 * ps}, {ps - 1 > 0 ? ps - 1 : 1, 2 * ps - 1}},
                    3, 6),
              "page boundaries, page " + std::to_string(ps));
  }
}

TEST(EdgeCases, ContiguousAndShuffledPages) {
  Shape s = shape(2, 2, 17, 3, {{1, 10}, {4, 4}, {3, 11}}, 1, 2);
  s.shuffle_pages = false;
  s.extra_pages_per_seq = 0;
  s.spare_pages = 0;
  s.pad_seqs = 0;
  s.pad_tokens = 0;
  run_shape(s, "contiguous pages, no padding anywhere");
  s.shuffle_pages = true;
  s.extra_pages_per_seq = 3;
  s.spare_pages = 9;
  s.pad_seqs = 3;
  s.pad_tokens = 5;
  run_shape(s, "shuffled non-contiguous pages, lots of padding");
}

TEST(EdgeCases, GqaGroupsOneToEight) {
  for (int g = 1; g <= 8; ++g) {
    run_shape(shape(2, g, 16, 4, {{1, 9}, {5, 5}, {3, 7}}, 1, 2), "gqa group " + std::to_string(g), nullptr,
              {{RPA_BF16, RPA_F32}, {RPA_FP8_E5M2, RPA_F16}});
  }
  run_shape(shape(1, 8, 64, 16, {{1, 40}, {8, 20}}, 1, 1), "gqa 8, one kv head", nullptr,
            {{RPA_BF16, RPA_BF16}, {RPA_F32, RPA_F32}});
}

TEST(EdgeCases, OddHeadDims) {
  for (int d : {1, 2, 3, 5, 7, 9, 15, 17, 31, 33, 63, 65, 80, 96, 127, 129, 130, 255, 257}) {
    run_shape(shape(1, 2, d, 5, {{1, 7}, {3, 3}, {2, 6}}, 1, 2), "head dim " + std::to_string(d), nullptr,
              {{RPA_F32, RPA_F32}, {RPA_BF16, RPA_BF16}, {RPA_INT8, RPA_F16}, {RPA_F16, RPA_F16}});
  }
}

TEST(EdgeCases, LargestHeadDimAndPage) {
  // head_dim 512 with page 1024: a sequence spanning two pages, a chunk at its end.
  Shape s = shape(1, 2, 512, 1024, {{1, 1030}, {6, 1100}}, 1, 1);
  s.extra_pages_per_seq = 0;
  s.spare_pages = 1;
  run_shape(s, "D 512, page 1024", nullptr, {{RPA_BF16, RPA_BF16}, {RPA_F32, RPA_F32}, {RPA_FP8_E4M3, RPA_F32}});
}

TEST(EdgeCases, EmptyBatches) {
  for (bool update : {true, false}) {
    Shape s = shape(2, 2, 8, 4, {}, 0, 0);
    s.update = update;
    s.pad_seqs = 3;  // garbage everywhere past num_seqs == 0
    s.pad_tokens = 4;
    run_shape(s, "num_seqs 0");
    s.pad_seqs = 0;
    s.pad_tokens = 0;
    run_shape(s, "max_num_seqs 0, max_num_tokens 0");
  }
}

TEST(EdgeCases, DistributionExtremes) {
  const std::vector<rt::SeqSpec> decodes = {{1, 3}, {1, 17}, {1, 1}};
  run_shape(shape(2, 2, 8, 4, decodes, 3, 3), "all decode: decode_end == prefill_end == num_seqs");
  const std::vector<rt::SeqSpec> prefills = {{5, 5}, {2, 9}, {1, 1}};
  run_shape(shape(2, 2, 8, 4, prefills, 0, 3), "all prefill: decode_end 0, prefill_end == num_seqs");
  run_shape(shape(2, 2, 8, 4, prefills, 0, 0), "all mixed: decode_end == prefill_end == 0");
  run_shape(shape(2, 2, 8, 4, decodes, 0, 0), "decodes in the mixed range");
  run_shape(shape(2, 2, 8, 4, decodes, 1, 3), "decodes in the prefill range");
}

TEST(EdgeCases, LongDecodeSplitKv) {
  // One long sequence: an implementation may split its KV across threads.
  for (int threads : {0, 1, 2, 3}) {
    run_shape(shape(2, 4, 64, 16, {{1, 2500}}, 1, 1), "long decode, threads " + std::to_string(threads),
              [=](Case& c) { c.opts.num_threads = threads; }, {{RPA_BF16, RPA_BF16}});
  }
  for (int threads : {1, 2, 3, 7})
    run_shape(shape(2, 4, 64, 16, {{1, 2100}, {1, 30}, {3, 700}}, 2, 2),
              "long decode with company, threads " + std::to_string(threads),
              [=](Case& c) { c.opts.num_threads = threads; }, {{RPA_F32, RPA_F32}, {RPA_INT8, RPA_BF16}});
}

TEST(EdgeCases, LongChunkedPrefill) {
  run_shape(shape(1, 4, 64, 128, {{40, 600}, {1, 300}}, 0, 1), "chunked prefill after a long prefix", nullptr,
            {{RPA_BF16, RPA_BF16}, {RPA_FP8_E5M2, RPA_F32}});
}

TEST(EdgeCases, WindowsCapsSinksScales) {
  const Shape s = shape(2, 2, 16, 4, {{1, 12}, {6, 6}, {4, 11}, {3, 9}}, 1, 2);
  run_shape(s, "window 1: only itself", [](Case& c) { c.opts.sliding_window = 1; });
  run_shape(s, "window 2", [](Case& c) { c.opts.sliding_window = 2; });
  run_shape(s, "window larger than any kv_len", [](Case& c) { c.opts.sliding_window = 1000; });
  // The planner adds rows to the window (int32 overflow there before 2026-12-01, UBSan).
  run_shape(s, "window INT32_MAX", [](Case& c) {
    c.opts.sliding_window = std::numeric_limits<int32_t>::max();
  });
  run_shape(s, "window, non-causal", [](Case& c) {
    c.opts.sliding_window = 3;
    c.opts.causal = 0;
  });
  run_shape(s, "non-causal", [](Case& c) { c.opts.causal = 0; });
  run_shape(s, "tiny soft cap", [](Case& c) { c.opts.soft_cap = 0.5f; });
  run_shape(s, "soft cap with large scores", [](Case& c) {
    c.opts.soft_cap = 5.0f;
    c.opts.sm_scale = 2.0f;
  });
  run_shape(s, "dominant sinks", [](Case& c) { c.sinks.assign(c.hq(), 30.0f); });
  run_shape(s, "negligible sinks", [](Case& c) { c.sinks.assign(c.hq(), -30.0f); });
  run_shape(s, "mixed sinks", [](Case& c) {
    c.sinks.resize(c.hq());
    for (int h = 0; h < c.hq(); ++h) c.sinks[h] = float(h % 3) - 1.0f;
  });
  run_shape(s, "sm_scale 0: plain averages", [](Case& c) { c.opts.sm_scale = 0.0f; });
  run_shape(s, "negative sm_scale", [](Case& c) { c.opts.sm_scale = -0.25f; });
  run_shape(s, "everything at once", [](Case& c) {
    c.opts.sliding_window = 5;
    c.opts.soft_cap = 3.0f;
    c.sinks.assign(c.hq(), 0.5f);
    c.opts.sm_scale = 0.3f;
  });
}

TEST(EdgeCases, QuantizedQueriesSaturate) {
  const Shape s = shape(2, 2, 32, 8, {{1, 12}, {5, 5}, {3, 10}}, 1, 2);
  // q_scale so small that many q / q_scale saturate; and a large one that rounds most q to 0.
  for (float qs : {0.002f, 0.02f, 0.5f}) {
    run_shape(s, "q_scale " + std::to_string(qs), [=](Case& c) { c.opts.q_scale = qs; },
              {{RPA_FP8_E4M3, RPA_F32}, {RPA_FP8_E5M2, RPA_BF16}, {RPA_INT8, RPA_F16}, {RPA_F32, RPA_F32}});
  }
}

TEST(EdgeCases, UpdateOffWithNullKeys) {
  Shape s = shape(2, 2, 16, 4, {{1, 12}, {6, 6}, {4, 11}}, 1, 2);
  s.update = false;
  run_shape(s, "update off, keys/values NULL", [](Case& c) { c.null_kv = true; });
  s.share_pages = true;
  run_shape(s, "update off, shared pages");
}

TEST(EdgeCases, PlanReusedForManyLayers) {
  Shape s = shape(2, 3, 24, 5, {{1, 12}, {1, 3}, {7, 7}, {4, 13}}, 2, 3);
  for (const Combo& cb : rt::default_combos()) {
    s.cache = cb.cache;
    s.act = cb.act;
    rt::Rng rng(rt::base_seed() + 99);
    Case c = rt::build_case(s, rng);
    c.sinks.assign(c.hq(), 0.25f);
    c.opts.soft_cap = 10.0f;
    EXPECT_TRUE(rt::run_and_check(c, rng, 5));
  }
}

}  // namespace

namespace {

TEST(EdgeCases, ManySequences) {
  // 200 decodes and 40 short prefills/chunks in one batch: many work items.
  rt::Rng pick(rt::base_seed() + 1234);
  std::vector<rt::SeqSpec> seqs;
  for (int i = 0; i < 200; ++i) seqs.push_back({1, rt::uniform_int(pick, 1, 50)});
  for (int i = 0; i < 40; ++i) {
    const int kv = rt::uniform_int(pick, 1, 12);
    seqs.push_back({rt::uniform_int(pick, 1, kv), kv});
  }
  run_shape(shape(1, 2, 8, 3, seqs, 200, 220), "240 sequences", nullptr,
            {{RPA_BF16, RPA_BF16}, {RPA_INT8, RPA_F32}});
}

TEST(EdgeCases, LongPrefillAcrossLargePages) {
  run_shape(shape(1, 2, 8, 1024, {{1030, 1030}, {1, 5}}, 0, 1), "prefill of 1030 over page 1024", nullptr,
            {{RPA_F32, RPA_F32}, {RPA_BF16, RPA_BF16}});
}

TEST(EdgeCases, WindowedLongDecodes) {
  for (int window : {1, 100, 700, 5000}) {
    run_shape(shape(2, 2, 32, 16, {{1, 2600}, {1, 900}, {5, 1200}}, 2, 2), "windowed long decode " + std::to_string(window),
              [=](Case& c) {
                c.opts.sliding_window = window;
                c.opts.num_threads = 2;
                c.opts.soft_cap = 30.0f;
                c.sinks.assign(c.hq(), 1.0f);
              },
              {{RPA_BF16, RPA_BF16}, {RPA_FP8_E5M2, RPA_F32}});
  }
}

TEST(EdgeCases, MoreThreadsThanWork) {
  for (int threads : {16, 64})
    run_shape(shape(1, 2, 16, 4, {{1, 9}, {3, 3}}, 1, 1), "threads " + std::to_string(threads),
              [=](Case& c) { c.opts.num_threads = threads; }, {{RPA_F32, RPA_F32}});
}

}  // namespace

namespace {

TEST(EdgeCases, LargestHeadDimWithWideGroups) {
  run_shape(shape(1, 8, 512, 16, {{1, 70}, {1, 33}, {9, 9}, {4, 40}}, 2, 3), "D 512, GQA 8", nullptr,
            {{RPA_BF16, RPA_BF16}, {RPA_FP8_E4M3, RPA_F32}, {RPA_F16, RPA_F16}});
  run_shape(shape(2, 8, 256, 3, {{1, 20}, {12, 12}, {5, 17}}, 1, 2), "D 256, GQA 8, page 3", nullptr,
            {{RPA_BF16, RPA_BF16}, {RPA_INT8, RPA_BF16}, {RPA_F32, RPA_F32}});
}

}  // namespace

namespace {

TEST(EdgeCases, GroupsBeyondEightAndManyKvHeads) {
  // MQA-like groups (12, 16, 17, 32: either side of any tile-size limit) and 8 kv heads.
  for (int g : {12, 16, 17, 32})
    run_shape(shape(1, g, 64, 16, {{1, 100}, {1, 17}, {6, 6}, {3, 40}}, 2, 3), "group " + std::to_string(g), nullptr,
              {{RPA_BF16, RPA_BF16}, {RPA_FP8_E4M3, RPA_BF16}, {RPA_F32, RPA_F32}});
  run_shape(shape(8, 4, 32, 32, {{1, 70}, {5, 5}, {2, 45}}, 1, 2), "8 kv heads", nullptr,
            {{RPA_BF16, RPA_BF16}, {RPA_INT8, RPA_F16}});
}

}  // namespace

namespace {

TEST(EdgeCases, ExtremeScales) {
  // Scales are valid whenever finite and >= 0, subnormal or huge ones included:
  // the fused write must still store what rpa_cache_write stores, and out match.
  // (Float caches are IEEE: x / 1e-45 overflows them to inf, so they get the
  // extremes that stay finite; fp8/int8 saturate and take them all.)
  const Shape s = shape(1, 2, 16, 4, {{1, 9}, {5, 5}, {3, 7}}, 1, 2);
  auto name = [](float x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", double(x));
    return std::string(buf);
  };
  for (float scale : {1e-45f, 1e-30f, 1e-6f, 1e30f, 3e38f}) {
    std::vector<Combo> combos = {{RPA_FP8_E4M3, RPA_F32}, {RPA_FP8_E5M2, RPA_BF16}, {RPA_INT8, RPA_F16}};
    if (scale >= 1e-30f) combos.insert(combos.end(), {{RPA_F32, RPA_F32}, {RPA_BF16, RPA_BF16}});
    run_shape(s, "k/v/q scales " + name(scale),
              [=](Case& c) { c.opts.k_scale = c.opts.v_scale = c.opts.q_scale = scale; }, combos);
    run_shape(s, "k/v scales " + name(scale), [=](Case& c) { c.opts.k_scale = c.opts.v_scale = scale; }, combos);
  }
}

}  // namespace
