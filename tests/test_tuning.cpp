// The developer switches of rpa_set_tuning select the "off" side of each lever
// that rpa-bench --ablate measures (general kernel for decodes, a scatter pass
// before attention, no prefetch, no split-KV, general kernel for prefills, fp32
// FMA tiles for bf16 prefills on a path with pair tiles). Every combination must
// compute the same attention, and the split-KV merge must be exact wherever it runs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "helpers.hpp"

namespace {

const char* const kSwitches[] = {"decode_kernel", "fused_update",   "prefetch",
                                 "split_kv",      "prefill_kernel", "pair_tiles"};

struct ResetTuning {
  ~ResetTuning() {
    for (const char* name : kSwitches) rpa_set_tuning(name, 1);
  }
};

// Decodes long enough that a 2-thread plan splits them (splits are >= 512
// positions, about a quarter of a thread's share), plus a chunk and a prefill.
rt::Case long_decode_case(rt::Rng& rng, rpa_dtype cache, rpa_dtype act, int page_size,
                          int head_dim = 40, int group = 4) {
  rt::Shape s;
  s.num_kv_heads = 2;
  s.group = group;
  s.head_dim = head_dim;
  s.page_size = page_size;
  s.cache = cache;
  s.act = act;
  s.seqs = {{1, 700}, {1, 1501}, {1, 2112}, {1, 37}, {24, 24}, {90, 300}};
  s.decode_end = 4;
  s.prefill_end = 5;
  rt::Case c = rt::build_case(s, rng);
  c.opts.num_threads = 2;
  return c;
}

TEST(Tuning, UnknownSwitchIsRejected) {
  EXPECT_EQ(rpa_set_tuning("no_such_switch", 0), -1);
  EXPECT_EQ(rpa_set_tuning(nullptr, 0), -1);
  EXPECT_EQ(rpa_set_tuning("prefetch", 1), 0);
}

TEST(Tuning, EverySwitchCombinationMatchesTheReference) {
  ResetTuning reset;
  rt::Rng rng(rt::base_seed() ^ 0x7u);
  constexpr int kCount = int(std::size(kSwitches));
  for (int mask = 0; mask < (1 << kCount); ++mask) {
    std::string on;
    for (int b = 0; b < kCount; ++b) {
      rpa_set_tuning(kSwitches[b], (mask >> b) & 1);
      if ((mask >> b) & 1) on += std::string(kSwitches[b]) + " ";
    }
    SCOPED_TRACE("switches on: " + on);
    rt::Case c = long_decode_case(rng, RPA_BF16, RPA_BF16, mask % 2 ? 16 : 5);
    EXPECT_TRUE(rt::run_and_check(c, rng, 0));
    EXPECT_TRUE(rt::run_and_check(c, rng, 2));
  }
}

// Split-KV with every cache dtype, sinks (carried by the first split only)
// and a sliding window that starts mid-split.
TEST(SplitKv, MergeIsExactForEveryCacheDtype) {
  ResetTuning reset;
  rt::Rng rng(rt::base_seed() ^ 0x5b1u);
  for (rpa_dtype cache : {RPA_F32, RPA_BF16, RPA_F16, RPA_FP8_E4M3, RPA_FP8_E5M2, RPA_INT8}) {
    for (int variant = 0; variant < 3; ++variant) {
      rt::Case c = long_decode_case(rng, cache, variant == 1 ? RPA_F32 : RPA_BF16, 16);
      if (variant >= 1) {
        c.sinks.assign(size_t(c.opts.num_q_heads), 0.0f);
        for (float& x : c.sinks) x = float(rt::uniform(rng, -2, 4));
      }
      if (variant == 2) c.opts.sliding_window = 1300;
      if (cache == RPA_FP8_E4M3 || cache == RPA_INT8) c.opts.k_scale = c.opts.v_scale = 0.05f;
      SCOPED_TRACE(c.describe());
      EXPECT_TRUE(rt::run_and_check(c, rng, 0));
    }
  }
}

// rpa_set_tuning("layout_at_write", 0), the pack-at-read ablation: tokens are
// written and read as rows of head_dim elements in each K and V block, and
// what the ablation cannot run (other caches, decode sequences) is refused
// with RPA_ERR_UNSUPPORTED before anything is written.
TEST(Tuning, PackingAtReadStoresTokenRowsAndRefusesWhatItCannotRun) {
  struct Reset {
    ~Reset() { rpa_set_tuning("layout_at_write", 1); }
  } reset;
  ASSERT_EQ(rpa_set_tuning("layout_at_write", 0), 0);
  const int D = 4, page_size = 2;
  rpa_cache_config cfg{1, D, page_size, 2, RPA_BF16};
  const size_t bytes = rpa_cache_bytes(&cfg);
  ASSERT_EQ(bytes, 256u);  // per page: a 64-byte K block and a 64-byte V block
  std::vector<uint8_t> kv(bytes, 0);
  const float k[D] = {1, 2, 3, 4}, v[D] = {5, 6, 7, 8};
  char err[256] = "";
  ASSERT_EQ(rpa_cache_write(kv.data(), &cfg, 1, 1, k, v, RPA_F32, 0, 0, err, sizeof err), RPA_OK) << err;
  // Page 1's K block at 128, slot 1's row 8 bytes in; its V block at 192.
  const uint16_t k_bits[D] = {0x3f80, 0x4000, 0x4040, 0x4080};  // bf16 1, 2, 3, 4
  const uint16_t v_bits[D] = {0x40a0, 0x40c0, 0x40e0, 0x4100};  // bf16 5, 6, 7, 8
  for (int d = 0; d < D; ++d) {
    uint16_t k_stored, v_stored;
    std::memcpy(&k_stored, &kv[128 + 8 + 2 * d], 2);
    std::memcpy(&v_stored, &kv[192 + 8 + 2 * d], 2);
    EXPECT_EQ(k_stored, k_bits[d]) << d;
    EXPECT_EQ(v_stored, v_bits[d]) << d;
  }
  float k_back[D], v_back[D];
  ASSERT_EQ(rpa_cache_read(kv.data(), &cfg, 1, 1, k_back, v_back, RPA_F32, 0, 0, err, sizeof err), RPA_OK);
  for (int d = 0; d < D; ++d) EXPECT_EQ(k_back[d], k[d]);
  for (int d = 0; d < D; ++d) EXPECT_EQ(v_back[d], v[d]);

  rpa_cache_config f32_cfg = cfg;
  f32_cfg.dtype = RPA_F32;
  std::vector<uint8_t> f32_kv(rpa_cache_bytes(&f32_cfg), 0);
  EXPECT_EQ(rpa_cache_write(f32_kv.data(), &f32_cfg, 0, 0, k, v, RPA_F32, 0, 0, err, sizeof err),
            RPA_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(err).find("layout_at_write"), std::string::npos) << err;
  for (uint8_t b : f32_kv) ASSERT_EQ(b, 0);

  // A decode beside a prefill: refused, nothing written.
  rt::Rng rng(rt::base_seed() ^ 0x1a7u);
  rt::Shape s = rt::shape(2, 4, 16, 16, {{1, 40}, {30, 30}}, 1, 2);
  s.cache = s.act = RPA_BF16;
  const rt::Case c = rt::build_case(s, rng);
  std::string msg;
  EXPECT_TRUE(rt::refused_untouched(c, rng, RPA_ERR_UNSUPPORTED, &msg));
  EXPECT_NE(msg.find("sequence 0 takes the decode kernel"), std::string::npos) << msg;
}

// Shapes the AMX decode kernel takes on an AMX CPU (bf16 queries and cache,
// head_dim % 16 == 0, page_size % 16 == 0, up to 16 query heads per kv head):
// 32 dims per tile and a 16-dim tail, 16- and 32-token P.V steps, partial
// first and last pages (windows, splits), sinks and soft cap. On other paths
// the same cases run through the FMA kernels.
TEST(AmxDecode, TileShapesMatchTheReference) {
  ResetTuning reset;
  rt::Rng rng(rt::base_seed() ^ 0xa3cu);
  const struct {
    int head_dim, page_size, group;
  } shapes[] = {{64, 16, 4}, {128, 32, 1}, {80, 48, 8}, {16, 64, 16}, {112, 16, 2}};
  for (const auto& shape : shapes) {
    // fp8 and int8 pages are widened to bf16 for the tiles.
    for (rpa_dtype cache : {RPA_FP8_E4M3, RPA_FP8_E5M2, RPA_INT8}) {
      rt::Case c = long_decode_case(rng, cache, RPA_BF16, shape.page_size, shape.head_dim,
                                    shape.group);
      c.opts.k_scale = c.opts.v_scale = cache == RPA_INT8 ? 0.03f : 0.5f;
      SCOPED_TRACE(c.describe());
      EXPECT_TRUE(rt::run_and_check(c, rng, 0));
    }
    for (int variant = 0; variant < 3; ++variant) {
      rt::Case c = long_decode_case(rng, RPA_BF16, RPA_BF16, shape.page_size, shape.head_dim,
                                    shape.group);
      if (variant == 1) {
        c.sinks.assign(size_t(c.opts.num_q_heads), 0.0f);
        for (float& x : c.sinks) x = float(rt::uniform(rng, -2, 4));
        c.opts.soft_cap = 5.0f;
      }
      if (variant == 2) c.opts.sliding_window = 333;
      SCOPED_TRACE(c.describe());
      EXPECT_TRUE(rt::run_and_check(c, rng, variant == 0 ? 2 : 0));
    }
  }
}

// A single visible token makes out = v exactly (its probability is 1), so
// with v_scale 1 and bf16 out every finite fp8 / int8 code must come back as
// its exact value: the widening of 1-byte pages for the AMX tiles (and the
// FMA kernels' expansion) is exact, subnormals and signs included.
TEST(AmxDecode, OneByteCodesWidenExactly) {
  for (rpa_dtype cache : {RPA_FP8_E4M3, RPA_FP8_E5M2, RPA_INT8}) {
    SCOPED_TRACE(cache);
    const int D = 256, Hkv = 1, Hq = 1, page_size = 16;
    rpa_cache_config cfg{Hkv, D, page_size, 1, cache};
    std::vector<uint8_t> kv(rpa_cache_bytes(&cfg), 0);
    std::vector<float> k(D, 0.0f), v(D);
    std::vector<double> want(D);
    for (int d = 0; d < D; ++d) {
      const uint8_t code = uint8_t(d);
      double x = cache == RPA_INT8 ? double(int8_t(code)) : (cache == RPA_FP8_E4M3 ? ref::decode_e4m3(code) : ref::decode_e5m2(code));
      if (std::isnan(x) || std::isinf(x) || (cache == RPA_INT8 && code == 0x80)) x = 0;  // no such value
      v[d] = float(x);
      want[d] = x;
    }
    char err[256];
    ASSERT_EQ(rpa_cache_write(kv.data(), &cfg, 0, 0, k.data(), v.data(), RPA_F32, 0, 0, err, sizeof err),
              RPA_OK) << err;
    const int32_t kv_lens[1] = {1}, pages[1] = {0}, cu[2] = {0, 1}, dist[3] = {1, 1, 1};
    rpa_batch batch{kv_lens, pages, cu, dist, 1, 1, 1};
    rpa_options opts;
    rpa_default_options(&opts, Hq, RPA_BF16, D);
    opts.update_kv_cache = 0;
    std::vector<uint16_t> q(D, 0), out(D, 0);
    ASSERT_EQ(rpa_ragged_paged_attention(q.data(), nullptr, nullptr, kv.data(), &cfg, &batch, &opts,
                                         out.data(), err, sizeof err),
              RPA_OK) << err;
    for (int d = 0; d < D; ++d) {
      const uint32_t bits = uint32_t(out[d]) << 16;
      float got;
      std::memcpy(&got, &bits, 4);
      EXPECT_EQ(double(got), want[d]) << "code 0x" << std::hex << d;
    }
  }
}

}  // namespace
