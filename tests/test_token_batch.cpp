// rpa_cache_write_tokens / rpa_cache_read_tokens (ABI 1.1): many tokens at
// once, addressed by a slot mapping as vLLM's. Each batched write must leave
// the cache byte for byte as rpa_cache_write of each token does (itself
// checked against the float64 quantizer in test_cache_io.cpp), each batched
// read must give what rpa_cache_read gives, on any thread count; a bad batch
// is refused with its field (and token) named and nothing written. The
// randomized part writes edge values into the batch's fields and checks the
// answer against this file's own reading of the rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "helpers.hpp"

namespace {

using rt::ActBuf;
using rt::Rng;

constexpr rpa_dtype kCacheDtypes[] = {RPA_F32, RPA_BF16, RPA_F16, RPA_FP8_E4M3, RPA_FP8_E5M2, RPA_INT8};
constexpr rpa_dtype kActDtypes[] = {RPA_F32, RPA_BF16, RPA_F16};

rpa_token_batch token_batch(const std::vector<int64_t>& slots, rpa_dtype dtype) {
  rpa_token_batch t{};
  t.struct_size = sizeof t;
  t.num_tokens = int32_t(slots.size());
  t.slot_mapping = slots.data();
  t.dtype = dtype;
  return t;
}

// n tokens onto distinct random slots of the cache, a few skipped (-1).
std::vector<int64_t> random_slots(const rpa_cache_config& cfg, int n, Rng& rng) {
  std::vector<int64_t> all(size_t(cfg.num_pages) * cfg.page_size);
  std::iota(all.begin(), all.end(), 0);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(size_t(n));
  for (auto& s : all)
    if (rt::coin(rng, 0.1)) s = -1;
  return all;
}

// Rows of n tokens with `stride` elements between them, N(0,1) values
// (scaled for the quantized caches' range), NaN in the gaps.
ActBuf random_rows(rpa_dtype dt, int n, int64_t stride, size_t row, Rng& rng) {
  ActBuf b(dt, size_t(std::max<int64_t>(1, n * stride)));
  for (size_t i = 0; i < b.size(); ++i) b.set(i, std::numeric_limits<double>::quiet_NaN());
  for (int t = 0; t < n; ++t)
    for (size_t e = 0; e < row; ++e) b.set(size_t(t * stride) + e, 2.0 * rt::normal(rng));
  return b;
}

struct Shape {
  rpa_cache_config cfg;
  int n;
  int64_t k_stride, v_stride;  // 0 = dense
};

TEST(TokenBatch, WritesAndReadsAsTokenByToken) {
  Rng rng(21);
  const Shape shapes[] = {
      {{2, 64, 16, 6, RPA_F32}, 70, 0, 0},
      {{3, 7, 1, 40, RPA_F32}, 33, 0, 30},  // page size 1, odd head dim, padded v rows
      {{1, 130, 3, 9, RPA_F32}, 20, 400, 0},
      {{8, 128, 16, 20, RPA_F32}, 150, 3 * 8 * 128, 3 * 8 * 128},  // rows of a fused qkv
  };
  for (const Shape& shape : shapes) {
    for (rpa_dtype cache_dt : kCacheDtypes) {
      for (rpa_dtype act : kActDtypes) {
        rpa_cache_config cfg = shape.cfg;
        cfg.dtype = cache_dt;
        const size_t row = size_t(cfg.num_kv_heads) * cfg.head_dim;
        const int64_t ks = shape.k_stride ? shape.k_stride : int64_t(row);
        const int64_t vs = shape.v_stride ? shape.v_stride : int64_t(row);
        const std::vector<int64_t> slots = random_slots(cfg, shape.n, rng);
        const ActBuf k = random_rows(act, shape.n, ks, row, rng), v = random_rows(act, shape.n, vs, row, rng);
        const float k_scale = ref::is_quantized(cache_dt) ? 0.05f : 0.0f, v_scale = k_scale * 1.5f;
        const std::string what = std::string(ref::dtype_name(cache_dt)) + " cache, " + ref::dtype_name(act) +
                                 " rows, Hkv " + std::to_string(cfg.num_kv_heads) + " D " +
                                 std::to_string(cfg.head_dim) + " page " + std::to_string(cfg.page_size);

        std::vector<uint8_t> want(rpa_cache_bytes(&cfg), rt::cache_canary(cache_dt));
        char err[256] = "";
        for (int i = 0; i < shape.n; ++i) {
          if (slots[size_t(i)] < 0) continue;
          const auto* kr = static_cast<const uint8_t*>(k.data()) + size_t(i * ks) * ref::dtype_size(act);
          const auto* vr = static_cast<const uint8_t*>(v.data()) + size_t(i * vs) * ref::dtype_size(act);
          ASSERT_EQ(rpa_cache_write(want.data(), &cfg, int32_t(slots[size_t(i)] / cfg.page_size),
                                    int32_t(slots[size_t(i)] % cfg.page_size), kr, vr, act, k_scale, v_scale, err,
                                    sizeof err),
                    RPA_OK)
              << err;
        }
        for (int threads : {1, 2, 3}) {
          rpa_token_batch t = token_batch(slots, act);
          t.k_stride = shape.k_stride;
          t.v_stride = shape.v_stride;
          t.k_scale = k_scale;
          t.v_scale = v_scale;
          t.num_threads = threads;
          std::vector<uint8_t> cache(want.size(), rt::cache_canary(cache_dt));
          ASSERT_EQ(rpa_cache_write_tokens(cache.data(), &cfg, &t, k.data(), v.data(), err, sizeof err), RPA_OK)
              << what << ": " << err;
          EXPECT_TRUE(cache == want) << what << ", " << threads << " threads: not what rpa_cache_write leaves";

          // Read back every token, one slot twice; skipped rows keep their bytes.
          std::vector<int64_t> read_slots = slots;
          read_slots.push_back(slots[0] >= 0 ? slots[0] : 0);
          t = token_batch(read_slots, act);
          t.k_stride = shape.k_stride;
          t.v_stride = shape.v_stride;
          t.k_scale = k_scale;
          t.v_scale = v_scale;
          t.num_threads = threads;
          const size_t n = read_slots.size();
          ActBuf rk(act, size_t(n * ks), 0x3c), rv(act, size_t(n * vs), 0x3c);
          ASSERT_EQ(rpa_cache_read_tokens(cache.data(), &cfg, &t, rk.data(), rv.data(), err, sizeof err), RPA_OK)
              << what << ": " << err;
          ActBuf one_k(act, row), one_v(act, row);
          const size_t es = ref::dtype_size(act);
          for (size_t i = 0; i < n; ++i) {
            const uint8_t* got_k = static_cast<const uint8_t*>(rk.data()) + i * size_t(ks) * es;
            const uint8_t* got_v = static_cast<const uint8_t*>(rv.data()) + i * size_t(vs) * es;
            if (read_slots[i] < 0) {
              EXPECT_TRUE(std::all_of(got_k, got_k + row * es, [](uint8_t b) { return b == 0x3c; })) << what;
              continue;
            }
            ASSERT_EQ(rpa_cache_read(cache.data(), &cfg, int32_t(read_slots[i] / cfg.page_size),
                                     int32_t(read_slots[i] % cfg.page_size), one_k.data(), one_v.data(), act, k_scale,
                                     v_scale, err, sizeof err),
                      RPA_OK);
            EXPECT_EQ(std::memcmp(got_k, one_k.data(), row * es), 0) << what << ", token " << i;
            EXPECT_EQ(std::memcmp(got_v, one_v.data(), row * es), 0) << what << ", token " << i;
          }
          // The gaps between strided rows are not written.
          if (ks > int64_t(row)) {
            const uint8_t* gap = static_cast<const uint8_t*>(rk.data()) + row * es;
            EXPECT_TRUE(std::all_of(gap, gap + (size_t(ks) - row) * es, [](uint8_t b) { return b == 0x3c; }));
          }
        }
      }
    }
  }
}

// Zero tokens: nothing to do, nothing touched, even with NULL arrays.
TEST(TokenBatch, ZeroTokens) {
  const rpa_cache_config cfg{1, 8, 4, 2, RPA_BF16};
  std::vector<uint8_t> cache(rpa_cache_bytes(&cfg), 0x77);
  rpa_token_batch t{};
  t.struct_size = sizeof t;
  t.dtype = RPA_F32;
  char err[256] = "";
  EXPECT_EQ(rpa_cache_write_tokens(cache.data(), &cfg, &t, nullptr, nullptr, err, sizeof err), RPA_OK) << err;
  EXPECT_EQ(rpa_cache_read_tokens(cache.data(), &cfg, &t, nullptr, nullptr, err, sizeof err), RPA_OK) << err;
  EXPECT_TRUE(std::all_of(cache.begin(), cache.end(), [](uint8_t b) { return b == 0x77; }));
  EXPECT_EQ(rpa_abi_version(), 101);
}

// ---- Bad batches -------------------------------------------------------------

constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();

// What the rules (rpa.h) say of a token batch: "" when valid, else a word the
// message must hold; `unsupported` for a struct_size of another version.
std::string broken_rule(const rpa_token_batch& t, const rpa_cache_config& cfg, bool k_null, bool v_null,
                        bool write, bool* unsupported) {
  *unsupported = false;
  if (t.struct_size != sizeof(rpa_token_batch)) {
    *unsupported = true;
    return "struct_size";
  }
  if (t.num_tokens < 0) return "num_tokens";
  if (t.num_tokens > 0 && t.slot_mapping == nullptr) return "slot_mapping";
  if (t.num_tokens > 0 && k_null) return "k is NULL";
  if (t.num_tokens > 0 && v_null) return "v is NULL";
  int32_t dt;
  std::memcpy(&dt, &t.dtype, sizeof dt);
  if (dt < 0 || dt > 2) return "dtype";
  const int64_t row = int64_t(cfg.num_kv_heads) * cfg.head_dim;
  if (t.k_stride != 0 && (t.k_stride < row || t.k_stride > (int64_t{1} << 40))) return "k_stride";
  if (t.v_stride != 0 && (t.v_stride < row || t.v_stride > (int64_t{1} << 40))) return "v_stride";
  if (!std::isfinite(t.k_scale) || t.k_scale < 0) return "k_scale";
  if (!std::isfinite(t.v_scale) || t.v_scale < 0) return "v_scale";
  if (t.num_threads < 0) return "num_threads";
  const int64_t slots = int64_t(cfg.num_pages) * cfg.page_size;
  for (int32_t i = 0; i < t.num_tokens; ++i)
    if (t.slot_mapping[i] < -1 || t.slot_mapping[i] >= slots) return "slot_mapping[" + std::to_string(i) + "]";
  if (write) {
    for (int32_t i = 0; i < t.num_tokens; ++i)
      for (int32_t j = 0; j < i; ++j)
        if (t.slot_mapping[i] >= 0 && t.slot_mapping[i] == t.slot_mapping[j]) return "both write slot";
  }
  return "";
}

TEST(TokenBatch, EdgeValuesGetTheAnswerTheRulesGive) {
  Rng rng(22);
  int refused = 0, accepted = 0;
  const int iters = rt::iterations(600);
  for (int iter = 0; iter < iters; ++iter) {
    rpa_cache_config cfg{rt::uniform_int(rng, 1, 3), rt::uniform_int(rng, 1, 20), rt::uniform_int(rng, 1, 5),
                         rt::uniform_int(rng, 1, 4), kCacheDtypes[rt::uniform_int(rng, 0, 5)]};
    const int64_t slots_in_cache = int64_t(cfg.num_pages) * cfg.page_size;
    const int n = rt::uniform_int(rng, 0, int(std::min<int64_t>(slots_in_cache, 6)));
    std::vector<int64_t> slots = random_slots(cfg, n, rng);
    rpa_token_batch t = token_batch(slots, kActDtypes[rt::uniform_int(rng, 0, 2)]);
    bool k_null = false, v_null = false;
    const bool write = rt::coin(rng, 0.6);
    const int64_t row = int64_t(cfg.num_kv_heads) * cfg.head_dim;
    // One or two fields overwritten by edge values.
    for (int m = rt::uniform_int(rng, 1, 2); m > 0; --m) {
      switch (rt::uniform_int(rng, 0, 9)) {
        case 0:
        case 1:
          if (n > 0) {
            const int64_t choices[] = {-2, -1, 0, slots_in_cache - 1, slots_in_cache, kMin64, kMax64,
                                       slots[size_t(rt::uniform_int(rng, 0, n - 1))]};
            slots[size_t(rt::uniform_int(rng, 0, n - 1))] = choices[rt::uniform_int(rng, 0, 7)];
          }
          break;
        case 2: {
          const int64_t choices[] = {-1, 0, 1, row - 1, row, row + 5, kMin64, kMax64};
          (rt::coin(rng, 0.5) ? t.k_stride : t.v_stride) = choices[rt::uniform_int(rng, 0, 7)];
          break;
        }
        case 3: {
          const int32_t choices[] = {-1, 0, n + 1, std::numeric_limits<int32_t>::min()};
          t.num_tokens = std::min(t.num_tokens, choices[rt::uniform_int(rng, 0, 3)]);
          break;
        }
        case 4: {
          const float choices[] = {std::nanf(""), -1.0f, INFINITY, 0.0f, 1e-3f};
          (rt::coin(rng, 0.5) ? t.k_scale : t.v_scale) = choices[rt::uniform_int(rng, 0, 4)];
          break;
        }
        case 5: rt::set_raw(t.dtype, rt::uniform_int(rng, -1, 6)); break;
        case 6: t.struct_size = rt::coin(rng, 0.5) ? sizeof t - 8 : sizeof t + 8; break;
        case 7: t.num_threads = rt::uniform_int(rng, -2, 3); break;
        case 8: (rt::coin(rng, 0.5) ? k_null : v_null) = true; break;
        default: t.slot_mapping = rt::coin(rng, 0.3) ? nullptr : t.slot_mapping; break;
      }
    }
    bool unsupported = false;
    const std::string rule = broken_rule(t, cfg, k_null, v_null, write, &unsupported);
    // Rows as large as the (valid) strides declare, so only the library can overrun.
    const auto stride_of = [&](int64_t s) { return s > 0 && s <= 64 ? s : row; };
    const size_t rows = size_t(std::max(n, 1));
    ActBuf k(RPA_F32, rows * size_t(std::max(stride_of(t.k_stride), row)));
    ActBuf v(RPA_F32, rows * size_t(std::max(stride_of(t.v_stride), row)));
    for (size_t i = 0; i < k.size(); ++i) k.set(i, rt::normal(rng));
    for (size_t i = 0; i < v.size(); ++i) v.set(i, rt::normal(rng));
    if (rule.empty() && ((t.k_stride > 64) || (t.v_stride > 64))) continue;  // rows we did not allocate
    std::vector<uint8_t> cache(rpa_cache_bytes(&cfg), 0x42);
    const std::vector<uint8_t> cache0 = cache;
    const std::vector<uint8_t> k0 = k.bytes;
    char err[512] = "";
    const rpa_status st =
        write ? rpa_cache_write_tokens(cache.data(), &cfg, &t, k_null ? nullptr : k.data(), v_null ? nullptr : v.data(),
                                       err, sizeof err)
              : rpa_cache_read_tokens(cache.data(), &cfg, &t, k_null ? nullptr : k.data(), v_null ? nullptr : v.data(),
                                      err, sizeof err);
    const std::string what = "iteration " + std::to_string(iter) + (write ? " (write)" : " (read)");
    if (rule.empty()) {
      ++accepted;
      EXPECT_EQ(st, RPA_OK) << what << ": " << err;
      continue;
    }
    ++refused;
    EXPECT_EQ(st, unsupported ? RPA_ERR_UNSUPPORTED : RPA_ERR_INVALID_ARGUMENT) << what << ": " << err;
    EXPECT_NE(std::string(err).find(rule), std::string::npos) << what << ": want '" << rule << "' in '" << err << "'";
    EXPECT_TRUE(cache == cache0) << what << ": a refused call wrote the cache";
    EXPECT_TRUE(k.bytes == k0) << what << ": a refused call wrote k";
  }
  std::printf("[ token batches ] %d refused, %d accepted\n", refused, accepted);
  EXPECT_GT(refused, iters / 6);  // both answers are exercised
  EXPECT_GT(accepted, iters / 6);
}

TEST(TokenBatch, NullCacheAndConfig) {
  const rpa_cache_config cfg{1, 8, 4, 2, RPA_BF16};
  std::vector<uint8_t> cache(rpa_cache_bytes(&cfg));
  const std::vector<int64_t> slots = {0};
  const rpa_token_batch t = token_batch(slots, RPA_F32);
  std::vector<float> k(8), v(8);
  char err[256] = "";
  EXPECT_EQ(rpa_cache_write_tokens(nullptr, &cfg, &t, k.data(), v.data(), err, sizeof err), RPA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("cache"), std::string::npos) << err;
  EXPECT_EQ(rpa_cache_read_tokens(cache.data(), nullptr, &t, k.data(), v.data(), err, sizeof err),
            RPA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(rpa_cache_write_tokens(cache.data(), &cfg, nullptr, k.data(), v.data(), err, sizeof err),
            RPA_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err).find("tokens"), std::string::npos) << err;
}

}  // namespace
