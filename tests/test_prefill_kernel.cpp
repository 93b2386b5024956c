// The prefill kernel's tile edges against the float64 reference: items of
// several 64-token K/V blocks, q_len and kv_len that are not multiples of the
// block or register-tile sizes, chunks starting mid-page, sliding windows
// cutting through a block, head dims off the tile width, GQA 1..8 (register
// tiles of rows that straddle query positions), soft cap and sinks, page size 1
// (keys widened by turning over blocks of tokens x words); and the
// same batches through the general kernel (rpa_set_tuning "prefill_kernel" off).
// On the avx512_bf16 and amx paths the bf16-act cases with a bf16 cache, or a
// 1-byte cache at even page sizes, run the pair tiles (vdpbf16ps, AMX; 16-row
// AMX tiles over items of any row count, depths of any head_dim): odd page sizes (pairs of positions across pages), odd first positions
// (windows), and single-position P.V at tile edges are among these shapes.
// The pack-at-read ablation (token rows in the cache) runs through both kinds of tiles.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "reference.hpp"

namespace {

using rt::Case;
using rt::run_shape;
using rt::shape;

TEST(PrefillKernel, ManyBlocksAndItems) {
  // 200 rows at G 4, head dim 64: items of 78 rows (312 score rows, the planner's
  // L2 budget), 4 blocks of positions for the last ones.
  run_shape(shape(2, 4, 64, 16, {{200, 200}}, 0, 1), "prefill 200");
  run_shape(shape(1, 4, 32, 16, {{129, 129}, {64, 64}, {65, 130}}, 0, 2), "block-size edges");
}

TEST(PrefillKernel, ChunksStartingMidPage) {
  for (int ps : {3, 16, 128}) {
    // First new position 223: mid-page for each page size.
    run_shape(shape(2, 2, 40, ps, {{77, 300}, {1, 90}}, 0, 1), "chunk after 223, page " + std::to_string(ps));
  }
}

TEST(PrefillKernel, SlidingWindowsCuttingThroughBlocks) {
  for (int window : {1, 5, 37, 64, 100, 290}) {
    run_shape(shape(1, 3, 24, 16, {{150, 250}, {40, 40}}, 0, 1), "window " + std::to_string(window),
              [&](Case& c) { c.opts.sliding_window = window; });
  }
}

TEST(PrefillKernel, NonCausal) {
  run_shape(shape(2, 2, 48, 16, {{70, 180}, {33, 33}}, 0, 2), "non-causal",
            [](Case& c) { c.opts.causal = 0; });
}

TEST(PrefillKernel, HeadDimsOffTheTileWidth) {
  for (int d : {1, 7, 17, 33, 80, 130, 200}) {
    run_shape(shape(1, 4, d, 16, {{70, 140}}, 0, 1), "head dim " + std::to_string(d), nullptr,
              {{RPA_F32, RPA_F32}, {RPA_BF16, RPA_BF16}, {RPA_INT8, RPA_F16}});
  }
}

TEST(PrefillKernel, SingleTokenPages) {
  // Token counts and dim groups off the kLanes x kLanes blocks, every cache word size.
  for (int d : {7, 17, 40, 130}) {
    run_shape(shape(1, 2, d, 1, {{37, 37}, {21, 90}}, 0, 1), "page 1, head dim " + std::to_string(d), nullptr,
              {{RPA_F32, RPA_F32}, {RPA_BF16, RPA_BF16}, {RPA_F16, RPA_F16}, {RPA_FP8_E4M3, RPA_BF16}, {RPA_INT8, RPA_F16}});
  }
}

TEST(PrefillKernel, GqaGroupsOneToEight) {
  for (int g = 1; g <= 8; ++g) {
    run_shape(shape(2, g, 32, 16, {{1, 50}, {45, 130}, {30, 30}}, 1, 2), "gqa " + std::to_string(g), nullptr,
              {{RPA_BF16, RPA_BF16}, {RPA_FP8_E5M2, RPA_F32}});
  }
}

TEST(PrefillKernel, SoftCapAndSinks) {
  run_shape(shape(2, 4, 64, 16, {{100, 160}}, 0, 1), "soft cap and sinks", [](Case& c) {
    c.opts.soft_cap = 5.0f;
    c.sinks.assign(size_t(c.hq()), 0.5f);
    c.sinks[1] = -2.0f;
  });
}

TEST(PrefillKernel, OneByteCachesWithBf16Queries) {
  // On avx512_bf16 and amx: fp8 / int8 words widened and packed into bf16 pairs
  // at even page sizes (2: pairs in the first half of each word's slots), with
  // and without q_scale, windows making odd first positions; odd page sizes
  // take the FMA tiles there.
  for (int ps : {2, 6, 16, 3}) {
    for (float q_scale : {0.0f, 0.02f}) {
      run_shape(shape(2, 4, 40, ps, {{77, 300}, {40, 40}}, 0, 1),
                "page " + std::to_string(ps) + ", q_scale " + std::to_string(q_scale),
                [&](Case& c) {
                  c.opts.q_scale = q_scale;
                  c.opts.sliding_window = 37;
                },
                {{RPA_FP8_E4M3, RPA_BF16}, {RPA_FP8_E5M2, RPA_BF16}, {RPA_INT8, RPA_BF16}});
    }
  }
}

TEST(PrefillKernel, FmaTilesComputeTheSame) {
  // Where the path has pair tiles (avx512_bf16, amx), its bf16 calls on fp32 FMA tiles instead.
  struct Reset {
    ~Reset() { rpa_set_tuning("pair_tiles", 1); }
  } reset;
  ASSERT_EQ(rpa_set_tuning("pair_tiles", 0), 0);
  run_shape(shape(2, 4, 64, 16, {{1, 70}, {100, 160}, {20, 90}}, 1, 2), "pair tiles off", nullptr,
            {{RPA_BF16, RPA_BF16}});
}

TEST(PrefillKernel, PackingAtReadComputesTheSame) {
  // The pack-at-read ablation (rpa_set_tuning "layout_at_write" off): the
  // cache holds token rows (rpa_cache_write writes them too), which the
  // prefill kernel turns over and widens (FMA tiles: f32 queries, or pair
  // tiles off) or packs into pair words (bf16 queries on avx512_bf16 and amx).
  // Blocks start mid-page and end off a pair; head dims off the 8 x 8 and
  // 16 x 16 word blocks.
  struct Reset {
    ~Reset() {
      rpa_set_tuning("layout_at_write", 1);
      rpa_set_tuning("pair_tiles", 1);
    }
  } reset;
  ASSERT_EQ(rpa_set_tuning("layout_at_write", 0), 0);
  for (int pair_tiles : {1, 0}) {
    ASSERT_EQ(rpa_set_tuning("pair_tiles", pair_tiles), 0);
    for (int ps : {2, 6, 16, 128}) {
      for (int d : {18, 64, 130}) {
        run_shape(shape(2, 4, d, ps, {{70, 70}, {33, 300}, {21, 90}}, 0, 3),
                  "token rows, page " + std::to_string(ps) + ", head dim " + std::to_string(d) +
                      ", pair tiles " + std::to_string(pair_tiles),
                  [&](Case& c) { c.opts.sliding_window = d == 18 ? 45 : 0; },
                  {{RPA_BF16, RPA_BF16}, {RPA_BF16, RPA_F32}});
      }
    }
  }
}

TEST(PrefillKernel, OutputsRoundToNearestEven) {
  // With a window of one position and zero queries (scores 0, so the fast
  // exp gives exactly 1; a max score m != 0 leaves 2^(m log2 e - m log2 e)
  // a rounding error away from 1) every row's probability is 1, so each
  // output is its position's stored v (f32 cache, no v_scale), rounded
  // once to the act dtype: the prefill kernel's vector output conversion must
  // give what store_act gives. Even dims hold bf16 ties (low 16 bits 0x8000),
  // odd dims f16 ties (low 13 bits 0x1000), so truncating or rounding ties
  // up fails; 40 dims: whole vectors and a tail.
  for (rpa_dtype act : {RPA_BF16, RPA_F16}) {
    SCOPED_TRACE(act);
    rt::Shape s = shape(1, 4, 40, 16, {{64, 64}}, 0, 1);
    s.cache = RPA_F32;
    s.act = act;
    s.update = false;
    rt::Rng rng(rt::base_seed() ^ 0x0e7u);
    Case c = rt::build_case(s, rng);
    c.opts.sliding_window = 1;
    rt::Layer l = rt::make_layer(c, rng);
    for (size_t i = 0; i < l.q.count; ++i) l.q.set(i, 0.0);
    const int D = c.cfg.head_dim;
    std::vector<float> k(static_cast<size_t>(D)), v(static_cast<size_t>(D));
    char msg[256];
    for (int r = 0; r < 64; ++r) {
      ASSERT_EQ(rpa_cache_read(l.cache.data(), &c.cfg, c.page_of(0, r), r % 16, k.data(), v.data(),
                               RPA_F32, 0, 0, msg, sizeof msg), RPA_OK) << msg;
      for (int d = 0; d < D; ++d) {
        uint32_t u;
        std::memcpy(&u, &v[size_t(d)], 4);
        u = d % 2 == 0 ? (u & 0xffff0000u) | 0x8000u : (u & 0xffffe000u) | 0x1000u;
        std::memcpy(&v[size_t(d)], &u, 4);
      }
      ASSERT_EQ(rpa_cache_write(l.cache.data(), &c.cfg, c.page_of(0, r), r % 16, k.data(), v.data(),
                                RPA_F32, 0, 0, msg, sizeof msg), RPA_OK) << msg;
    }
    std::vector<uint8_t> cache;
    rt::ActBuf out;
    std::string err;
    ASSERT_EQ(rt::run_one_call(c, l, cache, out, &err), RPA_OK) << err;
    for (int r = 0; r < 64; ++r) {
      ASSERT_EQ(rpa_cache_read(cache.data(), &c.cfg, c.page_of(0, r), r % 16, k.data(), v.data(),
                               RPA_F32, 0, 0, msg, sizeof msg), RPA_OK) << msg;
      for (int h = 0; h < c.hq(); ++h) {
        for (int d = 0; d < D; ++d) {
          ASSERT_EQ(out.get((size_t(r) * c.hq() + h) * D + d), ref::round_to(v[size_t(d)], act))
              << "row " << r << " head " << h << " dim " << d;
        }
      }
    }
  }
}

TEST(PrefillKernel, GeneralKernelComputesTheSame) {
  struct Reset {
    ~Reset() { rpa_set_tuning("prefill_kernel", 1); }
  } reset;
  ASSERT_EQ(rpa_set_tuning("prefill_kernel", 0), 0);
  run_shape(shape(2, 4, 64, 16, {{1, 70}, {100, 160}, {20, 90}}, 1, 2), "prefill kernel off");
}

}  // namespace
